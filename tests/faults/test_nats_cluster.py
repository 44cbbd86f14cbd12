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

from ivr.load.ledger import LedgerProcess
from tests.faults.conftest import assert_exactly_once, size
from tests.integration.conftest import ivr
from tests.nats import NatsCluster

pytestmark = pytest.mark.broker

CALLS = size(full=20_000, short=3_000)
RATE = size(full=1_000, short=500)
SEED, CUSTOMERS = 7, 300
#: How far into the calls the node dies, and how long it stays down.
KILL_AFTER, DOWN_FOR = 2.0, 2.0
#: `ivr load`'s own bound: the calls, the outage, and the ledger's catching up.
RUN_TIMEOUT = CALLS / RATE + 120.0


@pytest.mark.parametrize("killed", ["ledger", "ivr"])
async def test_a_node_killed_mid_run_loses_and_doubles_nothing(tmp_path, killed):
    """SIGKILL the ledger's (or the IVR's) node two seconds in, restart it: every ticket deducted once."""
    world = tmp_path / "world.yaml"
    status, out = await ivr("load", "--write-world", str(world), "--seed", str(SEED), "--customers", str(CUSTOMERS))
    assert status == 0, out
    async with NatsCluster(tmp_path / "nats", size=3) as cluster:
        ivr_node, ledger_node, _ = cluster.nodes
        ledger = LedgerProcess(
            config=ledger_node.config,
            db=tmp_path / "ledger.db",
            fixture=world,
            client_id="ivr-ledger",
            source="ivr-ledger",
            log_file=tmp_path / "ledger.log",
        )
        await ledger.start()
        try:
            run = asyncio.create_task(
                ivr(
                    "load", "--calls", str(CALLS), "--rate", str(RATE), "--seed", str(SEED),
                    "--customers", str(CUSTOMERS), "--broker", ivr_node.config.url, "--ledger-running",
                    "--ledger-db", str(ledger.db), "--workdir", str(tmp_path / "run"), "--no-progress", "--json",
                    timeout=RUN_TIMEOUT,
                )
            )  # fmt: skip
            await asyncio.sleep(KILL_AFTER)
            assert not run.done(), "the run ended before the node was killed: make it longer"
            victim = ledger_node if killed == "ledger" else ivr_node
            await cluster.kill(victim)
            await asyncio.sleep(DOWN_FOR)
            await cluster.restart(victim)
            status, out = await run
        finally:
            await ledger.stop()
    assert_exactly_once(status, out, calls=CALLS)
