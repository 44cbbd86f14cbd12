"""Time, behind one object, so a replayed 6 s silence costs no real time.

Every reading of the time in the flow goes through a :class:`Clock`. Replays and the
as-fast-as-possible load use a :class:`VirtualClock` per call, which moves only when a scripted
caller's silence or keypress says so; the trainer console and real-time load use the
:class:`RealClock`, a :class:`TimerClock`: a live caller's no-input countdown is one callback
scheduled on it (a timer handle, not a sleeping task: ten thousand live calls each wait on one).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Clock", "RealClock", "TimerClock", "VirtualClock"]


class Clock(Protocol):
    """Where a call gets the time and waits."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class TimerClock(Clock, Protocol):
    """A clock that runs in real time and can call back later: what a live countdown needs."""

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Call ``callback`` on the running loop after ``seconds``; the handle cancels it."""
        ...


class RealClock:
    """Wall-clock time; timers are the running loop's."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """``loop.call_later`` on the running loop."""
        return asyncio.get_running_loop().call_later(seconds, callback)


class VirtualClock:
    """Time that moves only when told: ``advance`` jumps it forward at once."""

    def __init__(self, *, start: datetime) -> None:
        """Start at ``start``, which must be timezone-aware (support hours depend on it)."""
        if start.tzinfo is None:
            msg = "a virtual clock needs a timezone-aware start"
            raise ValueError(msg)
        self._now = start

    def now(self) -> datetime:
        """The virtual instant."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self._now += timedelta(seconds=seconds)
