"""The outbox publisher: moves committed events from the store to the broker, in order, at least once.

The engine commits an event to the outbox in the same transaction as what it reports (a ticket
and its ``ticket.created``), then calls ``on_events``; this task wakes, publishes the oldest
unsent rows at QoS 1, and marks a row sent only when the broker has acknowledged it. So:

- a broker outage costs nothing but delay: calls go on, rows wait in the outbox, and the drain
  resumes on reconnection from the oldest unsent row;
- order holds: rows go out in outbox order (``seq``) on one connection, and the rows marked sent
  are always a prefix of the outbox, so after a failure everything from the first unacknowledged
  row is sent again, in order;
- an event may arrive twice (acknowledged, then the connection dropped before we recorded it):
  consumers deduplicate by event ``id``, which the contract (`docs/events.md`) tells them.

Publishing a batch (up to the bus's in-flight window) and recording the previous batch's PUBACKs
overlap, so the store's commit does not stall the window.

In the IVR's own process the engine's ``notify`` wakes the publisher. As `ivr relay`, a process of
its own beside the IVR, nobody can: it looks at the outbox every ``poll`` seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final, Protocol, Self

import structlog

from ivr.bus.base import BusError, PartlyPublishedError, TaskEndedError, wait_unless_ended
from ivr.clock import Clock, RealClock
from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import TracebackType

    from ivr.bus.base import Bus

__all__ = ["BULK_BATCH", "DEFAULT_BATCH", "Outbox", "OutboxPublisher"]

#: Rows published at once; matches the MQTT bus's default in-flight window.
DEFAULT_BATCH: Final = 100
#: Rows read, published and marked per round by a publisher that drains many at once (the relays,
#: the ledger's announcer): published the bus's window at a time, marked in one transaction.
BULK_BATCH: Final = 1000

log = structlog.get_logger("ivr.bus.publisher")


class Outbox(Protocol):
    """What the publisher reads: a directory's outbox, a ledger's announcements, a relay's view of either."""

    async def unsent(self, limit: int, *, after: int = 0) -> list[tuple[int, str, str]]:
        """The oldest unsent rows after ``seq`` ``after``, ``(seq, topic, payload)``, in order."""
        ...

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Record rows as acknowledged by the broker."""
        ...


class OutboxPublisher:
    """A task draining the outbox to the bus; ``notify`` wakes it, ``drained`` waits for it."""

    def __init__(  # noqa: PLR0913 - every option is a keyword with a default
        self,
        *,
        directory: Outbox,
        bus: Bus,
        topic_prefix: str | None = None,
        batch: int = DEFAULT_BATCH,
        retry_delay: float = 0.1,
        clock: Clock | None = None,
        poll: float | None = None,
    ) -> None:
        """Publish ``directory``'s outbox on ``bus``.

        ``topic_prefix`` replaces the leading ``ivr/v2`` of every topic (tests isolate themselves
        on a shared broker this way). ``retry_delay`` is the pause after a failed publish before
        waiting for the connection again, so a flapping broker is not hammered. With ``poll``, the
        outbox is also read every ``poll`` seconds, for a publisher no engine notifies.
        """
        if batch < 1:
            msg = f"batch must be at least 1, not {batch}"
            raise ValueError(msg)
        self._outbox = directory
        self._bus = bus
        self._prefix = topic_prefix.rstrip("/") if topic_prefix else None
        self._batch = batch
        self._retry_delay = retry_delay
        self._clock = clock or RealClock()
        self._poll = poll
        self._high = 0  # the last row acknowledged in this run, in order
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error_raised = False
        #: Rows acknowledged by the broker since start, and failed attempts: for metrics and tests.
        self.published = 0
        self.failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start draining (whatever an earlier run left unsent goes first)."""
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop; unsent rows stay in the outbox for the next run."""
        await self.stop()

    def start(self) -> None:
        """Start the draining task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-publisher")

    async def stop(self) -> None:
        """Cancel the task; a batch in flight is simply not marked, and goes again next run.

        Raises the error the task died of, unless :meth:`drained` already raised it.
        """
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            if not self._error_raised:
                raise

    async def until_stopped(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set; raise at once the error the publishing task died of, if it does."""
        await self._until(stop)

    def notify(self) -> None:
        """New rows are in the outbox: the engine's ``on_events`` callback."""
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Return once every row committed before this call is acknowledged and marked sent.

        Waits through a broker outage (bound it with ``asyncio.timeout``); raises if the
        publisher stopped on an error.
        """
        self.notify()
        await self._until(self._idle)

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; raise the error the task died of if it dies first (or say it stopped)."""
        task = self._task
        if task is None:
            msg = "the publisher is not running"
            raise RuntimeError(msg)
        try:
            await wait_unless_ended(event, task)
        except TaskEndedError:
            msg = "the publisher stopped"
            raise RuntimeError(msg) from None
        except Exception:
            self._error_raised = True
            raise

    # -- the work --------------------------------------------------------------------------

    def topic(self, topic: str) -> str:
        """The topic a row is published on, under the prefix if there is one."""
        if self._prefix and (topic == TOPIC_ROOT or topic.startswith(TOPIC_ROOT + "/")):
            return self._prefix + topic[len(TOPIC_ROOT) :]
        return topic

    async def run(self) -> None:
        """Drain whenever woken, until cancelled; errors of the bus are waited out, others raised."""
        self._wake.set()  # rows left by an earlier run
        self._high = 0  # a new run reads from the oldest unsent row
        while True:
            if self._poll is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
            self._wake.clear()
            try:
                await self._bus.wait_connected()
                await self._drain()
            except BusError as exc:
                self.failures += 1
                log.warning("outbox publish failed; will retry", error=str(exc), retry_in=self._retry_delay)
                self._wake.set()
                await asyncio.sleep(self._retry_delay)
                continue
            if not self._wake.is_set():
                self._idle.set()

    async def _drain(self) -> None:
        """Publish unsent rows in order until there are none; record acks behind the window.

        Rows up to ``_high`` have been acknowledged in this run, and are marked by the time a pass
        ends (it waits for the marking; a marking that fails ends the run), so each batch is read
        after it: not the batch whose marking may still be in progress, and not, at the start of
        a pass, every row marked before it (the ledger's store finds its unsent rows by walking
        its entries in rowid order: from the first, each pass walked every entry announced).
        """
        marking: asyncio.Task[None] | None = None
        try:
            while True:
                rows = await self._outbox.unsent(self._batch, after=self._high)
                if not rows:
                    return
                acked, error = await self._publish(rows)
                if marking is not None:
                    await marking
                    marking = None
                if acked:
                    self._high = acked[-1]
                    marking = asyncio.create_task(self._mark(acked))
                if error is not None:
                    raise error
        finally:
            if marking is not None:
                await marking

    async def _publish(self, rows: Sequence[tuple[int, str, str]]) -> tuple[list[int], BusError | None]:
        """Publish ``rows`` as one batch; the seqs acknowledged as an unbroken prefix, and the error if any."""
        try:
            await self._bus.publish_many([(self.topic(topic), payload) for _, topic, payload in rows])
        except PartlyPublishedError as exc:
            return [seq for seq, _, _ in rows[: exc.acked]], exc.cause
        return [seq for seq, _, _ in rows], None

    async def _mark(self, seqs: list[int]) -> None:
        await self._outbox.mark_sent(seqs, self._clock.now().isoformat())
        self.published += len(seqs)
