"""The shipped scenarios over NATS's MQTT listener (3.1.1 only: no MQTT 5, no shared subscriptions)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import replay_every_scenario
from tests.nats import NatsCluster

pytestmark = pytest.mark.broker


async def test_every_shipped_scenario_passes_over_nats(tmp_path):
    """`ivr replay scenarios --broker` a nats-server of the test's own: every scenario passes, exit 0."""
    async with NatsCluster(tmp_path / "nats", size=1) as nats:
        await replay_every_scenario(nats.nodes[0].config.url)
