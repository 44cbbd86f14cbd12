"""Time, behind one object, so a replayed 6 s silence costs no real time.

Every timer in the flow goes through a :class:`Clock`. Replays and the as-fast-as-possible load
use a :class:`VirtualClock` per call, which moves only when a scripted caller's silence or
keypress says so; the trainer console and real-time load use the :class:`RealClock`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "RealClock", "VirtualClock"]


class Clock(Protocol):
    """Where a call gets the time and waits."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time; ``sleep`` is ``asyncio.sleep``."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait in real time."""
        await asyncio.sleep(seconds)


class VirtualClock:
    """Time that moves only when told: ``sleep`` and ``advance`` jump it forward at once."""

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

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once, yielding to the loop so other tasks may run."""
        self.advance(seconds)
        await asyncio.sleep(0)
