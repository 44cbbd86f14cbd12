"""Starts planned calls at a rate, within a concurrency, and keeps count of what became of them.

`ivr load` and the fault suite share it: a fault test runs the same calls as a load run while it
kills, restarts or floods something, and watches :attr:`Launcher.completed` to pick its moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Final

from ivr.callers import LiveCaller, ScriptedCaller
from ivr.clock import RealClock, VirtualClock
from ivr.load.drive import ScriptDriver
from ivr.load.metrics import KeyLatency

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping
    from datetime import datetime

    from ivr.clock import TimerClock
    from ivr.engine import CallRecord, Engine
    from ivr.load.plan import CallPlan, Planner

__all__ = ["Launcher", "digests"]

_MAX_ERRORS: Final = 5


class Launcher:
    """Runs call ``i`` of a planner's plans, as a scripted (virtual time) or live (real time) caller."""

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        engine: Engine,
        planner: Planner,
        call_prefix: str,
        start: datetime,
        realtime: bool = False,
        clock: TimerClock | None = None,
        key_latency: KeyLatency | None = None,
    ) -> None:
        """Calls are named ``<call_prefix>-<index>``; virtual clocks start at ``start``.

        In real time the calls wait on ``clock`` (the real clock by default; a timing wrapper
        for `ivr load`).
        """
        self.engine = engine
        self.planner = planner
        self.call_prefix = call_prefix
        self.start = start
        self.realtime = realtime
        self.clock = clock or RealClock()
        self.key_latency = key_latency or KeyLatency()
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.live = 0
        self.peak_live = 0
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        #: Per call index: a digest of its plan, and its outcome, reason and number of events.
        self.signatures: dict[int, tuple[str, str]] = {}

    async def run(
        self, indices: Iterable[int] | AsyncIterable[int], *, rate: float = 0.0, concurrency: int = 500
    ) -> None:
        """Start the calls of ``indices``, in order; return when every one has ended.

        ``rate`` calls start per second (0: no limit), and at most ``concurrency`` run at once.
        The next index is asked for only once a call may start, so a worker taking its calls
        from a shared :class:`~ivr.load.calls.CallFile` takes no more than it can run.
        """
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        running: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            gate.release()

        began = loop.time()
        pending = _each(indices)
        for n in itertools.count():
            if rate > 0:
                delay = began + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await gate.acquire()
            index = await anext(pending, None)
            if index is None:
                gate.release()
                break
            task = asyncio.create_task(self.call(index))
            running.add(task)
            task.add_done_callback(done)
        while running:
            await asyncio.wait(set(running))

    async def call(self, index: int) -> None:
        """Run call ``index`` to its end, counting it; an error is counted, never raised."""
        plan = self.planner.plan(index)
        call_id = f"{self.call_prefix}-{index:07d}"
        self.kinds[plan.kind] += 1
        self.started += 1
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        signature = hashlib.blake2b(repr((plan.kind, plan.number, plan.beats)).encode(), digest_size=8).hexdigest()
        try:
            record = await (self._live(plan, call_id) if self.realtime else self._scripted(plan, call_id))
        except Exception as exc:  # noqa: BLE001 - a failed call is counted and reported; the run goes on
            self.failed += 1
            if len(self.errors) < _MAX_ERRORS:
                self.errors.append(f"call {index} ({plan.kind}): {exc!r}")
            self.signatures[index] = (signature, "error")
        else:
            outcome = record.call.outcome or "unfinished"
            self.outcomes[outcome] += 1
            self.completed += 1
            self.signatures[index] = (signature, f"{outcome}/{record.call.reason}/{len(record.events)}")
        finally:
            self.live -= 1
            self.key_latency.forget(call_id)

    def digests(self) -> tuple[str, str]:
        """Digests of every call's plan and of every call's outcome, in index order."""
        return digests(self.signatures)

    async def _scripted(self, plan: CallPlan, call_id: str) -> CallRecord:
        clock = VirtualClock(start=self.start)
        caller = self.key_latency.wrap(ScriptedCaller(plan.steps, clock=clock), call_id=call_id)
        return await self.engine.run_call(caller, clock=clock, number=plan.number, call_id=call_id)

    async def _live(self, plan: CallPlan, call_id: str) -> CallRecord:
        caller = LiveCaller(clock=self.clock)
        driver = ScriptDriver(caller=caller, beats=plan.beats)
        driver.start()
        try:
            timed = self.key_latency.wrap(caller, call_id=call_id)
            return await self.engine.run_call(timed, clock=self.clock, number=plan.number, call_id=call_id)
        finally:
            driver.cancel()


async def _each(indices: Iterable[int] | AsyncIterable[int]) -> AsyncIterator[int]:
    """``indices`` one at a time, whether a worker's share dealt by the database or a plain range."""
    if isinstance(indices, AsyncIterable):
        async for index in indices:
            yield index
    else:
        for index in indices:
            yield index


def digests(signatures: Mapping[int, tuple[str, str]]) -> tuple[str, str]:
    """Digests of the plans and of the outcomes of ``signatures`` (:attr:`Launcher.signatures`), in index order."""
    ordered = [s for _, s in sorted(signatures.items())]
    plans = hashlib.blake2b("\n".join(p for p, _ in ordered).encode(), digest_size=16).hexdigest()
    outcomes = hashlib.blake2b("\n".join(o for _, o in ordered).encode(), digest_size=16).hexdigest()
    return plans, outcomes
