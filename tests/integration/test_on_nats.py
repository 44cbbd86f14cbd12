"""The shipped scenarios over NATS's MQTT listener (3.1.1 only: no MQTT 5, no shared subscriptions)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from tests.integration.conftest import ivr
from tests.nats import NatsCluster

pytestmark = pytest.mark.broker


async def test_every_shipped_scenario_passes_over_nats(tmp_path):
    """`ivr replay scenarios --broker` a nats-server of the test's own: every scenario passes, exit 0."""
    async with NatsCluster(tmp_path / "nats", size=1) as nats:
        status, out = await ivr("replay", str(REPO / "scenarios"), "--broker", nats.nodes[0].config.url, timeout=120)
    assert status == 0, out
    summary = re.search(r"(\d+) passed, (\d+) failed \((\d+) scenarios", out)
    assert summary is not None, out
    passed, failed, total = map(int, summary.groups())
    assert (failed, passed) == (0, total)
    assert total >= 90  # the whole shipped suite, not a folder of it
