"""A RabbitMQ node (its MQTT plugin) SIGKILLed mid-run and started again: nothing lost, nothing doubled.

One node of the test's own (tests/rabbitmq.py), not the session's: the IVR (`ivr load` with its
`ivr relay`) and `ivr ledger` both talk to it. The ledger's persistent session is a durable queue
holding QoS 1 messages as persistent, which the node must recover from disk; the relay must
republish what the node never acknowledged. `ivr load` checks the outcome: every deductible ticket
answered and `ivr ledger verify` passing (exit status 0).
"""

from __future__ import annotations

import asyncio

import pytest

from ivr.load.ledger import LedgerProcess
from tests.faults.conftest import assert_exactly_once, ledger_entries, load_through_a_broker_fault, size
from tests.rabbitmq import rabbitmq_node

pytestmark = pytest.mark.broker

CALLS = size(full=10_000, short=2_500)
RATE = size(full=1_000, short=500)
#: How far into the calls the node dies, and how long it stays down (then a few seconds to boot again).
KILL_AFTER, DOWN_FOR = 2.5, 1.0


async def test_a_rabbitmq_node_killed_mid_run_loses_and_doubles_nothing(tmp_path):
    """SIGKILL the node 2.5 s into the calls, start it again: every call completes, every ticket deducted once."""
    deducted_before: list[int] = []
    with rabbitmq_node() as node:

        async def kill_and_restart(ledger: LedgerProcess) -> None:
            await asyncio.to_thread(node.kill)
            deducted_before.append(ledger_entries(ledger.db))
            await asyncio.sleep(DOWN_FOR)
            await asyncio.to_thread(node.start)

        status, out, ledger = await load_through_a_broker_fault(
            tmp_path,
            ivr_broker=node.config,
            ledger_broker=node.config,
            fault=kill_and_restart,
            calls=CALLS,
            rate=RATE,
            kill_after=KILL_AFTER,
        )
    assert_exactly_once(status, out, calls=CALLS)
    assert 0 < deducted_before[0] < ledger_entries(ledger.db), "the node did not die while tickets were being deducted"
