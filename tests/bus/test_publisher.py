"""The outbox publisher: in order, marked sent only after the broker's PUBACK, nothing lost in an outage.

Every test uses a real ``SqliteDirectory`` on a SQLite file. The first group runs on the in-memory bus
(the publisher's logic); the ``broker`` group on Mosquitto, including a broker restart mid-drain.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict

import pytest

from ivr.bus.base import BusUnavailableError, publish_one_by_one
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.local import LocalBroker, LocalBus
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.publisher import OutboxPublisher
from ivr.directory.sqlite import SqliteDirectory

WAIT = 30.0
FAST = Backoff(initial=0.02, maximum=0.2)


class AckedBus:
    """A bus wrapper remembering which payloads the broker acknowledged (publish returned)."""

    def __init__(self, bus):
        """Wrap ``bus``."""
        self.bus = bus
        self.acked: set[str] = set()
        self.fail_at: set[int] = set()  # publish numbers (1-based) that fail once, as a dropped connection
        self.calls = 0

    @property
    def connected(self):
        """As the wrapped bus."""
        return self.bus.connected

    async def wait_connected(self):
        """As the wrapped bus."""
        await self.bus.wait_connected()

    async def publish(self, topic, payload, *, retain=False):
        """Publish, failing the numbered calls in ``fail_at``; remember what was acknowledged."""
        self.calls += 1
        if self.calls in self.fail_at:
            raise BusUnavailableError("connection dropped (injected)")
        await self.bus.publish(topic, payload, retain=retain)
        self.acked.add(payload)

    async def publish_many(self, messages):
        """Each message through :meth:`publish`, so the injected failures apply part-way through a batch."""
        await publish_one_by_one(self.publish, messages)

    def deliveries(self):
        """As the wrapped bus."""
        return self.bus.deliveries()


class CheckedOutbox:
    """The real directory, checking at each ``mark_sent`` that every row marked was acknowledged."""

    def __init__(self, directory, bus: AckedBus):
        """Check ``directory``'s marks against what ``bus`` saw acknowledged."""
        self.directory = directory
        self.bus = bus
        self.marked: list[int] = []
        self.before_mark = None  # an async hook run before the real mark, for fault injection

    async def unsent(self, limit, *, after=0):
        """As the directory."""
        return await self.directory.unsent(limit, after=after)

    async def mark_sent(self, seqs, at):
        """Assert every row was acknowledged, run the fault hook, then mark."""
        seqs = list(seqs)
        payloads = {seq: payload for seq, _, payload in await self.directory.unsent(10_000)}
        unacked = [seq for seq in seqs if payloads.get(seq) not in self.bus.acked]
        assert not unacked, f"rows {unacked} marked sent before their PUBACK"
        if self.before_mark is not None:
            await self.before_mark(len(self.marked))
        self.marked.extend(seqs)
        await self.directory.mark_sent(seqs, at)


@pytest.fixture
async def directory(tmp_path):
    """A real IVR directory (outbox included) in a SQLite file."""
    opened = await SqliteDirectory.open(tmp_path / "ivr.db")
    yield opened
    await opened.close()


def all_rows(directory):
    """Every outbox row as (seq, topic, payload, sent_at)."""
    return directory._db.execute("SELECT seq, topic, payload, sent_at FROM outbox ORDER BY seq").fetchall()


def ids(payloads):
    """Event ids of JSON payloads, in order."""
    return [json.loads(p)["id"] for p in payloads]


def assert_per_call_order(payloads):
    """Within each call (subject), the first time each event arrives is in sequence order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for payload in payloads:
        event = json.loads(payload)
        if event["sequence"] not in seen[event["subject"]]:
            seen[event["subject"]].append(event["sequence"])
    for subject, sequences in seen.items():
        assert sequences == sorted(sequences), f"{subject} arrived out of order: {sequences}"


# -- on the in-memory bus -------------------------------------------------------------------


async def test_drains_in_order_and_marks_only_acked_rows(directory, calls, inbox):
    """Every row is published in outbox order and marked sent only after its acknowledgement."""
    events = calls(40, 5)
    await directory.add_events(events)
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["ivr/v2/#"]) as sub, LocalBus(broker=broker) as raw:
        box = inbox(sub)
        bus = AckedBus(raw)
        outbox = CheckedOutbox(directory, bus)
        async with OutboxPublisher(directory=outbox, bus=bus, batch=16) as publisher, asyncio.timeout(WAIT):
            await publisher.drained()
        await box.count(len(events))
    assert ids(box.payloads) == [e.id for e in events]
    rows = all_rows(directory)
    assert all(sent_at for *_, sent_at in rows)
    assert outbox.marked == [seq for seq, *_ in rows]


class ReadCounter:
    """The real directory, counting how often each row is read by ``unsent``."""

    def __init__(self, directory):
        """Count reads of ``directory``'s outbox."""
        self.directory = directory
        self.reads: dict[int, int] = defaultdict(int)

    async def unsent(self, limit, *, after=0):
        """As the directory; each row returned counted once more."""
        rows = await self.directory.unsent(limit, after=after)
        for seq, _, _ in rows:
            self.reads[seq] += 1
        return rows

    async def mark_sent(self, seqs, at):
        """As the directory."""
        await self.directory.mark_sent(seqs, at)


async def test_each_row_is_read_once_across_batches_and_passes(directory, calls, inbox):
    """Neither the batch being marked nor the rows marked in earlier passes are read again."""
    first, later = calls(30, 5), calls(30, 5)
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["ivr/v2/#"]) as sub, LocalBus(broker=broker) as bus:
        box = inbox(sub)
        outbox = ReadCounter(directory)
        async with OutboxPublisher(directory=outbox, bus=bus, batch=16) as publisher, asyncio.timeout(WAIT):
            await directory.add_events(first)
            await publisher.drained()
            await directory.add_events(later)  # a second pass
            await publisher.drained()
        await box.count(len(first) + len(later))
    assert ids(box.payloads) == [e.id for e in first + later]
    assert sorted(outbox.reads) == [seq for seq, *_ in all_rows(directory)]
    assert set(outbox.reads.values()) == {1}


async def test_outage_keeps_rows_until_the_broker_is_back(directory, calls, inbox):
    """While the broker is down rows wait in the outbox; when it is back they all go, in order."""
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["ivr/v2/#"]) as sub, LocalBus(broker=broker) as bus:
        box = inbox(sub)
        async with OutboxPublisher(directory=directory, bus=bus, retry_delay=0) as publisher:
            first = calls(3, 2)
            await directory.add_events(first)
            async with asyncio.timeout(WAIT):
                await publisher.drained()
            broker.stop()
            later = calls(5, 4)[6:]  # calls go on during the outage
            await directory.add_events(later)
            publisher.notify()
            assert [r[0] for r in await directory.unsent(100)] == [r[0] for r in (all_rows(directory))[6:]]
            broker.start()
            async with asyncio.timeout(WAIT):
                await publisher.drained()
        await box.count(len(first) + len(later))
    assert ids(box.payloads) == [e.id for e in first + later]
    assert await directory.unsent(100) == []


async def test_a_failed_publish_resends_from_the_first_unacknowledged_row(directory, calls, inbox):
    """After a failure mid-batch only the acknowledged prefix is marked; the rest goes again, in order."""
    events = calls(10, 3)
    await directory.add_events(events)
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["ivr/v2/#"]) as sub, LocalBus(broker=broker) as raw:
        box = inbox(sub)
        bus = AckedBus(raw)
        bus.fail_at = {7, 20}
        outbox = CheckedOutbox(directory, bus)
        async with OutboxPublisher(directory=outbox, bus=bus, batch=10, retry_delay=0) as publisher:
            async with asyncio.timeout(WAIT):
                await publisher.drained()
            assert publisher.failures == 2
        await box.until(lambda _: box.event_ids >= {e.id for e in events})
    assert outbox.marked == [seq for seq, *_ in all_rows(directory)]  # each row once, in order
    assert_per_call_order(box.payloads)


async def test_topic_prefix_replaces_the_root(directory, calls, inbox):
    """With a prefix, ``ivr/v2/call/started`` goes out as ``<prefix>/call/started``."""
    await directory.add_events(calls(1, 1))
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["#"]) as sub, LocalBus(broker=broker) as bus:
        box = inbox(sub)
        async with OutboxPublisher(directory=directory, bus=bus, topic_prefix="test/abc/") as publisher:
            async with asyncio.timeout(WAIT):
                await publisher.drained()
            assert publisher.topic("ivr/v2x/other") == "ivr/v2x/other"
        [delivery] = await box.count(1)
    assert delivery.topic == "test/abc/call/started"


async def test_drained_reports_a_dead_publisher(directory):
    """If the outbox itself fails, drained() raises that error instead of waiting forever."""

    class Broken:
        async def unsent(self, _limit, *, after=0):  # noqa: ARG002 - the Outbox protocol
            raise RuntimeError("disk gone")

        async def mark_sent(self, _seqs, _at):
            raise AssertionError

    async with LocalBus(broker=LocalBroker()) as bus, OutboxPublisher(directory=Broken(), bus=bus) as publisher:
        with pytest.raises(RuntimeError, match="disk gone"):
            async with asyncio.timeout(WAIT):
                await publisher.drained()


async def test_engine_notify_wakes_the_publisher(directory, calls, inbox):
    """notify() (the engine's on_events) is what makes newly committed rows go out."""
    broker = LocalBroker()
    async with LocalBus(broker=broker, subscriptions=["ivr/v2/#"]) as sub, LocalBus(broker=broker) as bus:
        box = inbox(sub)
        async with OutboxPublisher(directory=directory, bus=bus) as publisher:
            async with asyncio.timeout(WAIT):
                await publisher.drained()
            events = calls(1, 3)
            await directory.add_events(events)
            publisher.notify()
            await box.count(3)
    assert ids(box.payloads) == [e.id for e in events]


# -- on Mosquitto ---------------------------------------------------------------------------


@pytest.mark.broker
async def test_drains_to_mosquitto_in_order_after_pubacks(broker, directory, calls, root, client_id, inbox):  # noqa: PLR0913, PLR0917 - fixtures
    """Against a real broker: all rows arrive in outbox order, each marked only after its PUBACK."""
    events = calls(100, 10)
    await directory.add_events(events)
    async with (
        MqttBus(config=broker, client_id=client_id("sub"), subscriptions=[f"{root}/#"]) as sub,
        MqttBus(config=broker, client_id=client_id("pub"), backoff=FAST) as raw,
    ):
        async with asyncio.timeout(WAIT):
            await sub.wait_connected()
        box = inbox(sub)
        bus = AckedBus(raw)
        outbox = CheckedOutbox(directory, bus)
        async with OutboxPublisher(directory=outbox, bus=bus, topic_prefix=root) as publisher:
            async with asyncio.timeout(WAIT):
                await publisher.drained()
        await box.count(len(events))
    assert ids(box.payloads) == [e.id for e in events]
    assert {d.topic for d in box.items} == {f"{root}/call/started"}
    assert await directory.unsent(10) == []


@pytest.mark.broker
async def test_broker_restart_mid_drain_loses_nothing(needs_mosquitto, tmp_path, directory, calls, client_id, inbox):  # noqa: PLR0913, PLR0917 - fixtures
    """Mosquitto stopped while a drain is in flight, then restarted: every event arrives, none is lost.

    The broker persists to disk, the subscriber has a persistent session, and the publisher marks
    only acknowledged rows; calls go on during the outage and their events wait in the outbox.
    """
    before, during = calls(300, 10), calls(20, 5, prefix="late")
    await directory.add_events(before)
    async with EmbeddedBroker(persistence_dir=tmp_path / "mosquitto") as mosquitto:
        down = asyncio.Event()
        subscriber = {
            "config": mosquitto.config,
            "client_id": client_id("ledger"),
            "persistent": True,
            "manual_ack": True,
            "subscriptions": ["ivr/v2/#"],
            "backoff": FAST,
        }
        async with MqttBus(**subscriber) as sub, MqttBus(config=mosquitto.config, backoff=FAST) as raw:
            async with asyncio.timeout(WAIT):
                await sub.wait_connected()
            box = inbox(sub)
            bus = AckedBus(raw)
            outbox = CheckedOutbox(directory, bus)

            async def stop_broker_mid_drain(marked_so_far):
                if marked_so_far >= 200 and not down.is_set():
                    await mosquitto.stop()
                    down.set()

            outbox.before_mark = stop_broker_mid_drain
            async with OutboxPublisher(directory=outbox, bus=bus, retry_delay=0.01) as publisher:
                async with asyncio.timeout(WAIT):
                    await down.wait()
                    await raw.wait_disconnected()
                await directory.add_events(during)
                publisher.notify()
                unsent = await directory.unsent(10_000)
                assert unsent, "the outage should leave rows unsent"
                assert len(unsent) < len(before) + len(during), "the drain should have started"
                await mosquitto.start()
                async with asyncio.timeout(WAIT):
                    await publisher.drained()
            assert publisher.failures >= 1
            everything = {e.id for e in before + during}
            await box.until(lambda _: box.event_ids >= everything)
    assert await directory.unsent(10) == []
    assert_per_call_order(box.payloads)
    assert sub.connections >= 2


async def test_a_publisher_that_dies_says_why_instead_of_idling(tmp_path):
    """An error that is not a broker outage (the outbox file failing) ends the wait of `ivr relay` with that error."""

    class BrokenOutbox:
        """An outbox whose file fails on the first read."""

        async def unsent(self, _limit, *, after=0):  # noqa: ARG002 - the Outbox protocol
            """Fail as a broken disk would."""
            raise sqlite3.OperationalError("disk I/O error")

        async def mark_sent(self, _seqs, _at):
            """Never reached: nothing was read, so nothing was published."""
            raise AssertionError

    async with LocalBus(broker=LocalBroker()) as bus:
        await bus.wait_connected()
        async with OutboxPublisher(directory=BrokenOutbox(), bus=bus, poll=0.01) as publisher:
            with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
                async with asyncio.timeout(WAIT):
                    await publisher.until_stopped(asyncio.Event())
