"""Events of many calls, interleaved and out of order: the ledger ends with the same balances as in order."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
import structlog

from ivr.bootstrap import build_system
from ivr.bus.local import LocalBroker, LocalBus
from ivr.events import EventType, is_ticket_topic, ticket_topic
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.launch import Launcher
from ivr.load.plan import Planner
from ivr.load.world import Catalog, synthetic_world
from ivr.logs import configure
from tests.conftest import TUESDAY_10AM
from tests.faults.conftest import DEDUCTING, size

CALLS = size(full=10_000, short=1_000)
TOPIC = ticket_topic(0)  # one partition: these tests interleave on purpose, whatever the contracts


@pytest.fixture(scope="module")
def tight_world():
    """30 customers whose limited contracts hold 8 incidents each: the busy ones run out, so order could matter."""
    return synthetic_world(seed=99, customers=30, incidents=8)


@pytest.fixture(scope="module")
def ticket_stream(tight_world, tmp_path_factory):
    """Every ticket.created payload of CALLS calls, in the order the IVR wrote them to its outbox."""
    workdir = tmp_path_factory.mktemp("ivr")

    async def calls():
        system = await build_system(world=tight_world, workdir=workdir)  # in-process: nothing drains
        try:
            planner = Planner(seed=4, mix=DEDUCTING, catalog=Catalog.of(tight_world))
            launcher = Launcher(engine=system.engine, planner=planner, call_prefix="order", start=TUESDAY_10AM)
            await launcher.run(range(CALLS), concurrency=200)
            assert launcher.completed == CALLS
            return await system.directory.unsent(10 * CALLS)
        finally:
            await system.close()

    configure(level="error")  # this runs before the per-test quiet logging is set up
    try:
        rows = asyncio.run(calls())  # once for the module: both tests read the same stream
    finally:
        structlog.reset_defaults()
    return [payload.encode() for _, topic, payload in rows if is_ticket_topic(topic)]


async def ledger(world, path):
    """A fresh ledger file with the world's opening balances."""
    store = await SqliteLedgerStore.open(path)
    await store.load_opening({c.id: c.incidents for c in world.contracts.values()})
    return store


async def outcome(store):
    """What must not depend on arrival order: balances, deductions per contract, rejections, verify."""
    entries = await store.entries()
    report = await store.verify()
    assert report.ok, report.problems
    return await store.balances(), await store.deducted(), sum(e.outcome == "rejected" for e in entries), len(entries)


def interleaved(stream, rng):
    """The stream shuffled, with a tenth of it repeated later, cut into batches of random sizes."""
    shuffled = [*stream, *rng.sample(stream, len(stream) // 10)]
    rng.shuffle(shuffled)
    batches, at = [], 0
    while at < len(shuffled):
        size_ = rng.randint(1, 200)
        batches.append(shuffled[at : at + size_])
        at += size_
    return batches


async def test_a_shuffled_stream_gives_the_same_balances_as_in_order(ticket_stream, tight_world, tmp_path):
    """The service fed 10,000 calls' tickets (short: 1,000) shuffled, repeated and re-batched: balances as in order."""
    rng = random.Random(8)
    in_order = await ledger(tight_world, tmp_path / "in-order.db")
    shuffled = await ledger(tight_world, tmp_path / "shuffled.db")
    try:
        service = LedgerService(store=in_order, source="ledger")
        for at in range(0, len(ticket_stream), 100):
            await service.handle(ticket_stream[at : at + 100])
        service = LedgerService(store=shuffled, source="ledger")
        for batch in interleaved(ticket_stream, rng):
            handled = await service.handle(batch)
            assert not handled.dead
        expected = await outcome(in_order)
        assert await outcome(shuffled) == expected
        balances, _deducted, rejected, entries = expected
        deductible = sum(json.loads(p)["data"]["deduct"] for p in ticket_stream)
        assert entries == deductible  # one entry per deductible ticket: repeats changed nothing
        assert rejected > 0  # contracts ran out, so the order decided which tickets were rejected
        assert any(balance == 0 for _, balance in balances.values())
        assert all(balance is None or balance >= 0 for _, balance in balances.values())
    finally:
        await in_order.close()
        await shuffled.close()


async def test_the_consumer_on_a_shuffled_bus_gives_the_same_balances(ticket_stream, tight_world, tmp_path):
    """Through LedgerConsumer with manual acks on an in-memory bus, shuffled and repeated: balances as in order."""
    rng = random.Random(9)
    reference = await ledger(tight_world, tmp_path / "reference.db")
    consumed = await ledger(tight_world, tmp_path / "consumed.db")
    try:
        await LedgerService(store=reference, source="ledger").handle(ticket_stream)
        broker = LocalBroker()
        subscriptions = LedgerConsumer.subscriptions()
        async with (
            LocalBus(
                broker=broker, client_id="ledger", subscriptions=subscriptions, persistent=True, manual_ack=True
            ) as bus,
            LocalBus(broker=broker, client_id="ivrs") as feeder,
        ):
            consumer = LedgerConsumer(bus=bus, service=LedgerService(store=consumed, source="ledger"))
            task = asyncio.create_task(consumer.run())
            batches = interleaved(ticket_stream, rng)
            for batch in batches:
                for payload in batch:
                    await feeder.publish(TOPIC, payload)
                await asyncio.sleep(0)
            total = sum(len(b) for b in batches)
            async with asyncio.timeout(60):
                while consumer.applied < total or await consumed.unsent():
                    await asyncio.sleep(0.01)  # every batch applied and announced: nothing in flight
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await outcome(consumed) == await outcome(reference)
        assert consumer.dead == 0
        assert json.loads(ticket_stream[0])["type"] == EventType.TICKET_CREATED
    finally:
        await reference.close()
        await consumed.close()
