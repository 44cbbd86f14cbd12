"""A three-node NATS cluster, one node killed mid-run and restarted: nothing lost, nothing doubled.

The IVR (`ivr load` with its `ivr relay`) talks to one node and `ivr ledger` to another; the
cluster keeps the MQTT streams on three replicas. The killed node is either the ledger's, whose
persistent session must survive on the other two, or the IVR's, whose relay must republish what
the node never acknowledged. `ivr load` itself checks the outcome: every deductible ticket answered
and `ivr ledger verify` passing (exit status 0).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import assert_exactly_once, load_through_a_broker_fault, size
from tests.nats import NatsCluster

pytestmark = pytest.mark.broker

CALLS = size(full=20_000, short=3_000)
RATE = size(full=1_000, short=500)
#: How far into the calls the node dies, and how long it stays down.
KILL_AFTER, DOWN_FOR = 2.0, 2.0


@pytest.mark.parametrize("killed", ["ledger", "ivr"])
async def test_a_node_killed_mid_run_loses_and_doubles_nothing(tmp_path, killed):
    """SIGKILL the ledger's (or the IVR's) node two seconds into the calls, restart it: every ticket deducted once."""
    async with NatsCluster(tmp_path / "nats", size=3) as cluster:
        ivr_node, ledger_node, _ = cluster.nodes
        victim = ledger_node if killed == "ledger" else ivr_node

        async def kill_and_restart(_: object) -> None:
            await cluster.kill(victim)
            await asyncio.sleep(DOWN_FOR)
            await cluster.restart(victim)

        status, out, _ = await load_through_a_broker_fault(
            tmp_path,
            ivr_broker=ivr_node.config,
            ledger_broker=ledger_node.config,
            fault=kill_and_restart,
            calls=CALLS,
            rate=RATE,
            kill_after=KILL_AFTER,
        )
    assert_exactly_once(status, out, calls=CALLS)
