"""Events/s published by the IVR and deductions/s applied by the ledger, over a real Mosquitto.

Three measurements on a private broker (Debian's mosquitto on a free loopback port, nodelay on):

1. publisher: an outbox pre-filled by ``--calls`` support-code calls, drained to the broker
   (QoS 1, marked sent on PUBACK) - events/s published;
2. end to end: the same number of calls with the publisher, the ledger and the follower all
   running - calls/s and events/s, until the ledger has answered every ticket;
3. ledger: ``--calls`` ticket events queued in the ledger's persistent session while it is away,
   then the consumer started - deductions/s applied (validate, batch commit, ack), with its
   events announced by `ivr ledger relay` in a process of its own, as `ivr load` runs them.

    .venv/bin/python benchmarks/bus.py --calls 5000 [--only ledger]
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from ivr.bootstrap import build_system
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.mqtt import MqttBus
from ivr.bus.publisher import OutboxPublisher
from ivr.callers import Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.directory.relayed import LEDGER_PROGRESS_FILE, relayed_up_to
from ivr.events import CloudEvent, EventType
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.store import LedgerStore
from ivr.load.process import ServiceProcess
from ivr.logs import configure

WORLD = """\
customers:
  - {id: C-BIG, name: Big Co, kind: consumer}
contracts:
  - {id: K-BIG, customer: C-BIG, plan: premier, incidents: 10000000, valid_from: 2026-01-01, valid_until: 2027-12-31}
support_codes:
  - {code: "9000000001", contract: K-BIG}
"""
START = "2026-11-17T10:00:00-05:00"
STEPS = [Press("2"), Press("1"), Press("2"), Press("9000000001#"), Press("3")]


async def run_calls(system, calls: int, concurrency: int = 200) -> None:  # noqa: ANN001
    """``calls`` support-code calls, ``concurrency`` at a time, each on its own virtual clock."""
    from datetime import datetime  # noqa: PLC0415 - benchmark script

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


async def ledger_rate(broker: EmbeddedBroker, world_file: Path, calls: int, tmp: Path) -> str:
    """Queue ``calls`` ticket events in the ledger's persistent session, then time the consumer."""
    world = load_world(world_file)
    store = await LedgerStore.open(tmp / "ledger.db")
    await store.load_opening({c.id: c.incidents for c in world.contracts.values()})
    subs = LedgerConsumer.subscriptions()
    ledger_bus = {
        "config": broker.config,
        "client_id": "bench-ledger",
        "subscriptions": subs,
        "persistent": True,
        "manual_ack": True,
    }
    async with MqttBus(**ledger_bus) as bus:  # create the session, then go away
        await bus.wait_connected()
    async with MqttBus(config=broker.config, client_id="bench-feeder") as feeder:
        await feeder.wait_connected()
        payloads = [
            CloudEvent(
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
                    "contract": "K-BIG",
                    "rule": "R4",
                    "deduct": True,
                },
            ).to_json()
            for i in range(calls)
        ]
        for start in range(0, calls, 500):
            await asyncio.gather(*(feeder.publish("ivr/v1/ticket/created", p) for p in payloads[start : start + 500]))
    service = LedgerService(store=store, source="bench-ledger")
    relay = ServiceProcess(
        config=broker.config,
        command=["ledger", "--db", str(tmp / "ledger.db"), "relay", "--instance", "bench-ledger-relay"],
        instance="bench-ledger-relay",
        log_file=tmp / "relay.log",
    )
    try:
        await relay.start()
        async with MqttBus(**ledger_bus) as bus:
            consumer = LedgerConsumer(bus=bus, service=service, announce=False)
            started = time.perf_counter()
            task = asyncio.create_task(consumer.run())
            async with asyncio.timeout(600):
                while consumer.applied < calls:  # noqa: ASYNC110 - the consumer has no event to wait on
                    await asyncio.sleep(0.01)
                applied = time.perf_counter() - started
                # Wait for the announcements too, so none is cut short.
                end = await store.entries_end()
                while await relayed_up_to(tmp / LEDGER_PROGRESS_FILE) < end:  # noqa: ASYNC110 - another process's file
                    await asyncio.sleep(0.01)
            announced = time.perf_counter() - started
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        report = await store.verify()
        deducted = (await store.deducted()).get("K-BIG", 0)
    finally:
        await relay.stop()
        await store.close()  # an open aiosqlite thread would keep the process alive
    return (
        f"ledger: {deducted:,} deductions applied in {applied:.2f}s = {deducted / applied:,.0f} deductions/s "
        f"(validated, committed in batches, acked; all announced by `ivr ledger relay` after {announced:.2f}s = "
        f"{deducted / announced:,.0f}/s); verify {'OK' if report.ok else report.problems}"
    )


MEASURES = {"publisher": publisher_rate, "e2e": end_to_end, "ledger": ledger_rate}


async def main(calls: int, only: list[str]) -> None:
    """Run the measurements (all three, or ``only`` those) on one private broker."""
    configure(level="error")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world_file = tmp / "world.yaml"
        world_file.write_text(WORLD)
        async with EmbeddedBroker() as broker:
            for name, measure in MEASURES.items():
                if only and name not in only:
                    continue
                work = tmp / name
                work.mkdir()
                print(await measure(broker, world_file, calls, work), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--only", action="append", choices=sorted(MEASURES), help="run only this (repeatable)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.only or []))
