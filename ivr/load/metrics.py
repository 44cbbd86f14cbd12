"""What a load run measures, each from the outside of the part it times.

- :class:`KeyLatency`: wall time from the caller handing a key to the engine to the next prompt
  played. It wraps each call's caller (the key's instant) and watches prompts as an engine
  observer, so the engine needs no timing code of its own.
- :class:`TimerLateness`: how late the no-input timers fire against their due time, by wrapping
  the clock the live callers wait on.
- :class:`AnswerLatency`: ``ticket.created`` seen on the broker to the ledger's answer seen on the
  broker, by one subscriber timing both on one clock (so no clock skew between processes).
- :class:`Samples`: latencies kept as doubles in an array, summarized by nearest-rank percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import orjson

from ivr.bus.mqtt import MqttBus, forget_session
from ivr.callers import Key
from ivr.events import EventType

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ivr.auth.decisions import Decision
    from ivr.bus.url import BrokerConfig
    from ivr.callers import Caller, Input
    from ivr.clock import TimerClock
    from ivr.engine import Heard
    from ivr.events import CloudEvent
    from ivr.states.call import Call

__all__ = ["AnswerLatency", "EventCount", "KeyLatency", "Samples", "TimedCaller", "TimerLateness"]

_ANSWERS: Final = frozenset({EventType.LEDGER_INCIDENT_DEDUCTED.value, EventType.LEDGER_DEDUCTION_REJECTED.value})
#: One event in this many is serialized again to learn the mean payload size (for the ceiling).
_SIZE_SAMPLE_EVERY: Final = 16


class Samples:
    """Durations in seconds, compactly stored; percentiles by nearest rank."""

    def __init__(self, values: Iterable[float] = ()) -> None:
        """Start with ``values``."""
        self._values = array("d", values)

    def add(self, seconds: float) -> None:
        """One more sample."""
        self._values.append(seconds)

    def __len__(self) -> int:
        """How many samples."""
        return len(self._values)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) by nearest rank, or ``None`` without samples."""
        if not self._values:
            return None
        ordered = sorted(self._values)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary_ms(self, *percentiles: float) -> dict[str, float | int | None]:
        """``{"p50": ms, ..., "samples": n}``, milliseconds rounded to 0.01."""
        out: dict[str, float | int | None] = {}
        ordered = sorted(self._values)
        for p in percentiles:
            value = ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] if ordered else None
            out[f"p{p:g}"] = None if value is None else round(value * 1000, 2)
        out["samples"] = len(ordered)
        return out


class KeyLatency:
    """Keypress to next prompt: callers stamp the key, the observer stamps the prompt.

    A digit key plays no prompt; the next key's stamp replaces it, so a digit entry is timed from
    its ``#``. A key after which no prompt comes (a hang-up follows) leaves nothing.
    """

    def __init__(self) -> None:
        """No key pending."""
        self.samples = Samples()
        self._pending: dict[str, float] = {}

    def wrap(self, caller: Caller, *, call_id: str) -> TimedCaller:
        """``caller`` for the call ``call_id``, stamping each key it hands over."""

        def stamp() -> None:
            self._pending[call_id] = time.perf_counter()

        return TimedCaller(caller, on_key=stamp)

    def forget(self, call_id: str) -> None:
        """The call is over."""
        self._pending.pop(call_id, None)

    # -- the engine observer ---------------------------------------------------------------

    def on_prompt(self, call: Call, heard: Heard) -> None:  # noqa: ARG002 - the observer protocol
        """A prompt played: if a key is pending for its call, that is one sample."""
        started = self._pending.pop(call.id, None)
        if started is not None:
            self.samples.add(time.perf_counter() - started)

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:
        """Not timed."""

    def on_decision(self, call: Call, decision: Decision) -> None:
        """Not timed."""

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """Not timed."""


class TimedCaller:
    """A caller that reports the instant it hands a key over, and is otherwise the caller it wraps."""

    def __init__(self, inner: Caller, *, on_key: Callable[[], None]) -> None:
        """Wrap ``inner``; ``on_key()`` is called as each key is returned to the engine."""
        self._inner = inner
        self._on_key = on_key

    async def next_input(self, timeout: float) -> Input:
        """The wrapped caller's next input, stamped when it is a key."""
        got = await self._inner.next_input(timeout)
        if isinstance(got, Key):
            self._on_key()
        return got


class TimerLateness:
    """A real-time clock whose timers that fire (the no-input countdowns) are timed against their due time."""

    def __init__(self, inner: TimerClock) -> None:
        """Wrap ``inner`` (the real clock)."""
        self._inner = inner
        self.samples = Samples()

    def now(self) -> datetime:
        """The wrapped clock's time."""
        return self._inner.now()

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Schedule ``callback``; if the timer fires (it was not cancelled), record how late it ran."""
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds

        def fire() -> None:
            self.samples.add(max(0.0, loop.time() - due))
            callback()

        return self._inner.call_later(seconds, fire)


class EventCount:
    """Counts the events calls emit (an engine observer), and samples their JSON size."""

    def __init__(self) -> None:
        """Nothing counted."""
        self.events = 0
        self.tickets = 0
        self._sized = 0
        self._bytes = 0

    @property
    def mean_bytes(self) -> int:
        """The mean size of an event's JSON payload, from a sample of them."""
        return round(self._bytes / self._sized) if self._sized else 0

    def on_event(self, call: Call, event: CloudEvent) -> None:  # noqa: ARG002 - the observer protocol
        """One more event."""
        self.events += 1
        if event.type == EventType.TICKET_CREATED:
            self.tickets += 1
        if self.events % _SIZE_SAMPLE_EVERY == 1:
            self._sized += 1
            self._bytes += len(event.to_json())

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:
        """Not counted."""

    def on_prompt(self, call: Call, heard: Heard) -> None:
        """Not counted."""

    def on_decision(self, call: Call, decision: Decision) -> None:
        """Not counted."""


class AnswerLatency:
    """A subscriber timing ``ticket.created`` to the ledger's answer, both as the broker delivers them."""

    def __init__(self, *, bus: MqttBus, config: BrokerConfig, source: str | None = None) -> None:
        """Listen on ``bus`` (:func:`ivr.bootstrap.answers_bus`, on ``config``'s broker) once :meth:`start` is awaited.

        Its session is forgotten at :meth:`close`. With ``source``, only that IVR's tickets and the
        answers to them count: other IVRs may publish on the same broker (`ivr load --workers`).
        """
        self._config = config
        self.samples = Samples()
        self._source = source
        self.deducted = 0
        self.rejected = 0
        self._seen: dict[str, float] = {}
        self._answered: set[str] = set()
        self._changed = asyncio.Event()
        self._bus = bus
        self._task: asyncio.Task[None] | None = None

    @property
    def answered(self) -> int:
        """Ledger answers seen so far."""
        return self.deducted + self.rejected

    async def start(self) -> None:
        """Connect and subscribe; returns once subscribed, so no event is missed after it."""
        self._bus.open()
        await self._bus.wait_connected()
        self._task = asyncio.create_task(self._receive(), name="answer-latency")

    async def close(self) -> None:
        """Stop listening and drop the session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._bus.aclose()
        if self._bus.client_id is not None:
            await forget_session(self._config, self._bus.client_id)

    async def wait_answered(self, count: int, timeout: float) -> bool:
        """Until ``count`` answers are seen, or ``timeout`` seconds: whether they were."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.answered < count:
                    self._changed.clear()
                    await self._changed.wait()
        return self.answered >= count

    async def _receive(self) -> None:
        async for delivery in self._bus.deliveries():
            now = time.perf_counter()
            try:
                event = orjson.loads(delivery.payload)
                kind, data = event["type"], event["data"]
            except (ValueError, KeyError, TypeError):
                continue
            if self._source is not None and self._source not in (event.get("source"), data.get("trigger_source")):
                continue
            if kind == EventType.TICKET_CREATED:
                if data.get("deduct") and event["id"] not in self._answered:
                    self._seen.setdefault(event["id"], now)  # a re-sent copy keeps the first instant
            elif kind in _ANSWERS:
                trigger = str(data.get("trigger_event_id"))
                if trigger in self._answered:
                    continue  # an answer re-published after a ledger restart
                self._answered.add(trigger)
                if kind == EventType.LEDGER_INCIDENT_DEDUCTED:
                    self.deducted += 1
                else:
                    self.rejected += 1
                started = self._seen.pop(trigger, None)
                if started is not None:  # else the ticket was published before we subscribed
                    self.samples.add(now - started)
                self._changed.set()
