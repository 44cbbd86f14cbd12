"""With no Mosquitto on the machine, replay's embedded broker is amqtt: nothing else to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_replay_runs_on_the_amqtt_fallback_broker():
    """IVR_EMBEDDED_BROKER=amqtt: scenarios with deductions pass over amqtt (MQTT 3.1.1, loopback)."""
    scenarios = [
        REPO / "scenarios/rules/r04_support_code.yaml",
        REPO / "scenarios/rules/r07_last_incident_two_calls.yaml",
    ]
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", "replay", "--ledger", *map(str, scenarios)],
        env={**os.environ, "IVR_EMBEDDED_BROKER": "amqtt", "IVR_BROKER": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout
    assert "ledger verify: OK" in done.stdout
