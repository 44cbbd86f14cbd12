"""`ivr ledger`'s loop: ticket events in from the bus, deductions committed, acked, then announced.

The order is what makes it exactly-once over an at-least-once bus:

1. take every delivery that has arrived (up to ``batch``) — one transaction for all of them;
2. commit the batch (:class:`~ivr.ledger.service.LedgerService`): a redelivered event finds its
   entry and changes nothing; each entry keeps what the ledger event that announces it is made of;
3. dead-letter the malformed, and by reference (topic and size) what was too large to read;
   a failure here stops before the acks;
4. acknowledge the batch (paho's manual ack) — only after the commit, so a crash before it means
   redelivery, never loss;
5. the committed ledger events are announced by an outbox publisher over the store
   (:class:`~ivr.bus.publisher.OutboxPublisher`, as the IVR's events are), or, with
   ``announce=False``, by `ivr ledger relay`, a process of its own reading the same file.

Announcing is apart from applying because it is bounded by the broker (a PUBACK per event), while
applying is bounded by one SQLite transaction per batch: waiting for the announcements before the
acks made the broker's round trips the ledger's pace. Nothing is lost by it: an announcement not
yet made is in the store and goes out after a restart (at least once, with the same event id).
In its own process it also takes its CPU off the ledger's, where publishing and reading the
PUBACKs weigh (docs/performance.md).

Several ledgers split the tickets by partition (:class:`~ivr.ledger.partitions.PartitionShare`,
any broker) or by an MQTT shared subscription (``share``, brokers that have them); either way
they apply to one store, whose entries make a ticket seen twice a no-op. Each announces only the
entries it applied: announcers reading one store's every entry published most of them twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import structlog

from ivr.bus.base import BusError, deadletter_topic
from ivr.bus.publisher import BULK_BATCH, OutboxPublisher
from ivr.events import TOPIC_ROOT, ticket_topics
from ivr.ledger.service import DeadLetter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ivr.bus.base import Bus, Delivery
    from ivr.ledger.partitions import PartitionShare
    from ivr.ledger.service import LedgerService
    from ivr.ledger.storage import LedgerStorage

__all__ = ["DEFAULT_BATCH", "LedgerConsumer", "deadletter_payload"]

#: Deliveries committed in one transaction at most: a commit's sync costs the same whatever its
#: size, so a big batch spreads it thin (docs/performance.md). A batch is what has arrived, so a
#: quiet ledger still commits each message at once.
DEFAULT_BATCH: Final = 2000

log = structlog.get_logger("ivr.ledger")


def deadletter_payload(dead: DeadLetter, *, topic: str) -> bytes:
    """The dead-letter message: the reason, where it came from, its size, and the original bytes if kept."""
    original: dict[str, str | int]
    if dead.oversize is not None:
        original = {"size": dead.oversize}
    else:
        try:
            original = {"size": len(dead.payload), "payload": dead.payload.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"size": len(dead.payload), "payload_base64": base64.b64encode(dead.payload).decode("ascii")}
    body = {"reason": dead.reason, "topic": topic, "received_at": datetime.now(UTC).isoformat(), **original}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class _Applied:
    """The entries one ledger applied, as its announcer's outbox."""

    store: LedgerStorage
    ledger: str

    async def unsent(self, limit: int, *, after: int = 0) -> list[tuple[int, str, str]]:
        return await self.store.unsent(limit, after=after, ledger=self.ledger)

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        await self.store.mark_sent(seqs, at)


def _too_large(size: int) -> DeadLetter:
    """The dead letter of a message the bus discarded unread as too large: by reference, its size."""
    return DeadLetter(b"", f"{size} bytes: over the message size limit, discarded unread", size)


class LedgerConsumer:
    """Consumes ``<root>/ticket/created/<partition>`` from a bus with manual acknowledgement."""

    def __init__(
        self,
        *,
        bus: Bus,
        service: LedgerService,
        root: str = TOPIC_ROOT,
        batch: int = DEFAULT_BATCH,
        announce: bool = True,
    ) -> None:
        """Apply what ``bus`` delivers through ``service``; publish under ``root``.

        ``announce=False`` leaves the ledger events to `ivr ledger relay`.
        """
        self._bus = bus
        self._service = service
        self._root = root
        self._batch = batch
        own = _Applied(store=service.store, ledger=service.source)
        self._announcer = (
            OutboxPublisher(directory=own, bus=bus, topic_prefix=root, batch=BULK_BATCH) if announce else None
        )
        self.applied = 0  # deliveries committed and acked, for progress and tests
        self.dead = 0

    @staticmethod
    def subscriptions(
        root: str = TOPIC_ROOT, share: str | None = None, partitions: PartitionShare | None = None
    ) -> list[str]:
        """The topic filters the ledger's bus must subscribe to: every ticket partition, or ``partitions``'.

        With ``share``, shared subscriptions (``$share/<share>/...``): the broker gives each
        message to one of the ledgers subscribed under that name, all applying to one store.
        """
        filters = ticket_topics(None if partitions is None else partitions.partitions, root=root)
        if share is None:
            return filters
        if not share or any(c in share for c in "/+#"):
            msg = f"a share name is one topic level, not {share!r}"
            raise ValueError(msg)
        return [f"$share/{share}/{topic}" for topic in filters]

    async def run(self) -> None:
        """Consume until cancelled or the bus is closed, announcing as it goes (what a crash left first).

        An announcer that dies of anything but a broker outage (which it waits out) ends the run
        with its error: a ledger that applies and never announces must not look alive.
        """
        if self._announcer is None:
            await self._consume()
            return
        async with self._announcer:
            consuming = asyncio.create_task(self._consume(), name="ledger-consume")
            consumed = asyncio.Event()
            consuming.add_done_callback(lambda _: consumed.set())
            try:
                await self._announcer.until_stopped(consumed)
            finally:
                consuming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consuming

    async def _consume(self) -> None:
        async for batch in self._bus.batches(self._batch):
            await self._apply(batch)

    async def _apply(self, batch: list[Delivery]) -> None:
        handled = await self._service.handle(d.payload for d in batch if d.oversize is None)
        if handled.verdicts and self._announcer is not None:
            self._announcer.notify()
        dead = [(d.topic, _too_large(d.oversize)) for d in batch if d.oversize is not None]
        try:
            dead_topic = deadletter_topic(root=self._root)
            by_payload = {d.payload: d.topic for d in batch}
            dead += [(by_payload.get(letter.payload, ""), letter) for letter in handled.dead]
            for topic, letter in dead:
                await self._bus.publish(dead_topic, deadletter_payload(letter, topic=topic))
                log.warning("dead-lettered", reason=letter.reason, topic=topic)
        except BusError as exc:
            # Not acked: the broker redelivers on the next connection and the entries absorb it.
            log.warning("dead letters not published; batch left unacknowledged", error=str(exc))
            return
        for delivery in batch:
            delivery.ack()
        self.applied += len(batch)
        self.dead += len(dead)
        log.info("batch applied", size=len(batch), new=len(handled.verdicts), dead=len(dead))
