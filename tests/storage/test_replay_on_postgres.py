"""`ivr replay scenarios --store postgresql://...`: every shipped scenario passes with its state in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from ivr.replay.outline import load_scenarios
from ivr.replay.scenario import discover

REPO = Path(__file__).resolve().parents[2]


async def replay_schemas(url, prefix="replay_"):
    """The schemas replays (or others, by ``prefix``) made that are still there."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix)
    finally:
        await conn.close()


def test_every_shipped_scenario_passes_on_postgresql_and_leaves_no_schema_behind(postgres_url):
    """A real `ivr replay` process over its private broker, each scenario in a schema of its own, dropped after."""
    env = {k: v for k, v in os.environ.items() if k not in {"IVR_BROKER", "IVR_STORE"}}
    done = subprocess.run(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "ivr", "replay", "scenarios", "--json", "--store", postgres_url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    shipped = sum(len(load_scenarios(path)) for path in discover([REPO / "scenarios"]))
    assert len(report["scenarios"]) == shipped > 90
    assert all(s["passed"] for s in report["scenarios"])
    assert asyncio.run(replay_schemas(postgres_url)) == []
