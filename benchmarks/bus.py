"""Events/s published by the IVR and deductions/s applied by the ledger, over a real Mosquitto.

Three measurements on a private broker (Debian's mosquitto on a free loopback port, nodelay on):

1. publisher: an outbox pre-filled by ``--calls`` support-code calls, drained to the broker
   (QoS 1, marked sent on PUBACK) - events/s published;
2. end to end: the same number of calls with the publisher, the ledger and the follower all
   running - calls/s and events/s, until the ledger has answered every ticket;
3. ledger: ``--calls`` ticket events (over ``--contracts`` contracts) queued in the persistent
   session of each of ``--ledgers`` `ivr ledger` processes (more than one: on one file, splitting
   the tickets by a shared subscription or, with ``--split partitions``, by ticket partition) while
   they are away, then the processes started - deductions/s applied (validate, batch commit, ack)
   from their first batch to their last, with the events announced by `ivr ledger relay`.

    .venv/bin/python benchmarks/bus.py --calls 5000 [--only ledger] [--ledgers 2] [--split partitions --contracts 32]
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiosqlite

from ivr.bootstrap import build_system
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.mqtt import MqttBus
from ivr.bus.publisher import OutboxPublisher
from ivr.callers import Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.events import CloudEvent, EventType
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.partitions import PartitionShare
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess, LedgerRelayProcess
from ivr.logs import configure

WORLD = """\
customers:
  - {id: C-BIG, name: Big Co, kind: consumer}
contracts:
  - {id: K-BIG, customer: C-BIG, plan: premier, incidents: 10000000, valid_from: 2026-01-01, valid_until: 2027-12-31}
%s
support_codes:
  - {code: "9000000001", contract: K-BIG}
"""
#: The other contracts of the ledger's measurement with ``--contracts``: K-BIG-1, K-BIG-2...
MORE_CONTRACT = (
    "  - {id: K-BIG-%d, customer: C-BIG, plan: premier, incidents: 10000000, valid_from: 2026-01-01, "
    "valid_until: 2027-12-31}"
)
START = "2026-11-17T10:00:00-05:00"
STEPS = [Press("2"), Press("1"), Press("2"), Press("9000000001#"), Press("3")]


async def run_calls(system, calls: int, concurrency: int = 200) -> None:  # noqa: ANN001
    """``calls`` support-code calls, ``concurrency`` at a time, each on its own virtual clock."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            clock = VirtualClock(start=datetime.fromisoformat(START))
            await system.engine.run_call(ScriptedCaller(STEPS, clock=clock), clock=clock, number=f"+1555{i:07d}")

    await asyncio.gather(*(one(i) for i in range(calls)))


async def publisher_rate(broker: EmbeddedBroker, world_file: Path, calls: int, tmp: Path) -> str:
    """Fill the outbox with no broker link, then time the publisher's drain."""
    system = await build_system(world=load_world(world_file), workdir=tmp)  # in-process: nothing drains
    await run_calls(system, calls)
    rows = len(await system.directory.unsent(10_000_000))
    async with MqttBus(config=broker.config, client_id="bench-publisher") as bus:
        await bus.wait_connected()
        publisher = OutboxPublisher(directory=system.directory, bus=bus)
        started = time.perf_counter()
        async with publisher:
            await publisher.drained()
        elapsed = time.perf_counter() - started
    await system.close()
    return f"publisher: {rows:,} events in {elapsed:.2f}s = {rows / elapsed:,.0f} events/s (QoS 1, marked on PUBACK)"


async def end_to_end(broker: EmbeddedBroker, world_file: Path, calls: int, tmp: Path) -> str:
    """Calls with everything running, until the ledger has answered every ticket."""
    system = await build_system(world=load_world(world_file), workdir=tmp, broker=broker.config, source="bench-e2e")
    started = time.perf_counter()
    await run_calls(system, calls)
    await system.settle()
    elapsed = time.perf_counter() - started
    rows = len(await system.directory._scans.execute_fetchall("SELECT seq FROM outbox"))  # noqa: SLF001
    deducted = (await system.ledger.deducted()).get("K-BIG", 0) if system.ledger else 0
    await system.close()
    return (
        f"end to end: {calls:,} calls, {rows:,} events, {deducted:,} deductions in {elapsed:.2f}s = "
        f"{calls / elapsed:,.0f} calls/s, {rows / elapsed:,.0f} events/s"
    )


async def ledger_rate(  # noqa: PLR0913 - the measurement's options, keywords
    broker: EmbeddedBroker,
    world_file: Path,
    calls: int,
    tmp: Path,
    *,
    ledgers: int = 1,
    split: str = "share",
    contracts: int = 1,
) -> str:
    """Queue ``calls`` ticket events for ``ledgers`` persistent sessions, then start the ledgers and time them."""
    db = tmp / "ledger.db"
    world = load_world(world_file)
    store = await SqliteLedgerStore.open(db)  # the file the relay reads exists before any ledger starts
    await store.load_opening({c.id: c.incidents for c in world.contracts.values()})
    names = [f"bench-ledger-{k}" for k in range(ledgers)]
    share = "bench-ledger" if ledgers > 1 and split == "share" else None
    shares = [PartitionShare(k + 1, ledgers) if ledgers > 1 and split == "partitions" else None for k in range(ledgers)]
    for name, part in zip(names, shares, strict=True):  # each session made, then away: the broker queues for it
        session = MqttBus(
            config=broker.config,
            client_id=name,
            subscriptions=LedgerConsumer.subscriptions(share=share, partitions=part),
            persistent=True,
            manual_ack=True,
        )
        async with session:
            await session.wait_connected()
    async with MqttBus(config=broker.config, client_id="bench-feeder") as feeder:
        await feeder.wait_connected()
        events = [ticket_event(i, contracts) for i in range(calls)]
        await feeder.publish_many([(event.topic, event.to_json()) for event in events])
    relay = LedgerRelayProcess(config=broker.config, db=db, instance="bench-ledger-relay", log_file=tmp / "relay.log")
    processes = [
        LedgerProcess(
            config=broker.config,
            db=db,
            fixture=world_file,
            client_id=name,
            source=name,
            announce=False,
            share=share,
            partitions=None if part is None else str(part),
            log_file=tmp / f"{name}.log",
        )
        for name, part in zip(names, shares, strict=True)
    ]
    try:
        await relay.start()
        await asyncio.gather(*(process.start() for process in processes))
        async with asyncio.timeout(600):
            while await store.entries_end() < calls:  # noqa: ASYNC110 - the ledgers' progress is in the file
                await asyncio.sleep(0.01)
            applied = time.perf_counter()
            while await relay.relayed_up_to() < calls:  # noqa: ASYNC110 - the relay's progress is in its file
                await asyncio.sleep(0.01)
            announced = time.perf_counter() - applied
        first, last, after_first = await _applied_span(db)
        report = await store.verify()
        deducted = sum((await store.deducted()).values())
    finally:
        for process in processes:
            await process.stop()
        await relay.stop()
        await store.close()  # an open aiosqlite thread would keep the process alive
    span = (last - first).total_seconds()
    return (
        f"ledger: {deducted:,} deductions on {contracts} contract(s) applied by {ledgers} `ivr ledger` process(es)"
        f"{f' split by {split}' if ledgers > 1 else ''}, "
        f"{after_first:,} of them in the {span:.2f}s after the first batch = {after_first / span:,.0f} deductions/s "
        f"(validated, committed in batches, acked; all announced by `ivr ledger relay` {announced:.2f}s after "
        f"the last was applied); verify {'OK' if report.ok else report.problems}"
    )


def ticket_event(i: int, contracts: int = 1) -> CloudEvent:
    """The ``i``-th deductible ticket event of the ledger's measurement, on the ``i % contracts``-th contract."""
    contract = f"K-BIG-{i % contracts}" if i % contracts else "K-BIG"
    return CloudEvent(
        type=EventType.TICKET_CREATED.value,
        source="bench-ivr",
        subject=f"call-{i}",
        time=START,
        sequence=3,
        data={
            "ticket": f"{3_000_000 + i}",
            "method": "support_code",
            "caller_kind": "consumer",
            "purpose": "technical",
            "severity": "C",
            "customer": "C-BIG",
            "contract": contract,
            "rule": "R4",
            "deduct": True,
        },
    )


async def _applied_span(db: Path) -> tuple[datetime, datetime, int]:
    """When the first and the last batch were applied, and how many entries came after the first.

    Each batch's entries carry the time it was applied: counting from the first batch leaves the
    processes' start out of the rate, and covers the ledgers when there are several.
    """
    async with aiosqlite.connect(db) as conn:
        [(first, last)] = list(await conn.execute_fetchall("SELECT MIN(applied_at), MAX(applied_at) FROM entries"))
        [(after,)] = list(await conn.execute_fetchall("SELECT COUNT(*) FROM entries WHERE applied_at > ?", (first,)))
    return datetime.fromisoformat(first), datetime.fromisoformat(last), int(after)


MEASURES = ("publisher", "e2e", "ledger")


async def main(calls: int, only: list[str], ledgers: int, split: str, contracts: int) -> None:
    """Run the measurements (all three, or ``only`` those) on one private broker."""
    configure(level="error")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world_file = tmp / "world.yaml"
        world_file.write_text(WORLD % "\n".join(MORE_CONTRACT % j for j in range(1, contracts)))
        measures = {
            "publisher": publisher_rate,
            "e2e": end_to_end,
            "ledger": functools.partial(ledger_rate, ledgers=ledgers, split=split, contracts=contracts),
        }
        async with EmbeddedBroker() as broker:
            for name in MEASURES:
                if only and name not in only:
                    continue
                work = tmp / name
                work.mkdir()
                print(await measures[name](broker, world_file, calls, work), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--only", action="append", choices=MEASURES, help="run only this (repeatable)")
    parser.add_argument("--ledgers", type=int, default=1, help="`ivr ledger` processes sharing the ticket events")
    parser.add_argument("--split", choices=("share", "partitions"), default="share", help="how several ledgers split")
    parser.add_argument("--contracts", type=int, default=1, help="contracts the ledger's tickets are spread over")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.only or [], arguments.ledgers, arguments.split, arguments.contracts))
