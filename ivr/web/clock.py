"""The console's clock: real time, shifted so that a call starts at the instant the trainer chose.

Support hours decide calls (R8), so a trainer must be able to walk "Saturday 10:00" on a Tuesday
afternoon; yet the no-input countdown must run in real seconds in front of the trainee. So the
clock ticks with :class:`~ivr.clock.RealClock` and only its reading is moved, by a fixed offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivr.clock import RealClock

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from datetime import datetime

__all__ = ["ShiftedClock"]


class ShiftedClock:
    """A :class:`~ivr.clock.TimerClock` reading ``start`` now, then moving with real time."""

    def __init__(self, *, start: datetime, real: RealClock | None = None) -> None:
        """Read ``start`` (timezone-aware: support hours depend on it) at the moment of creation."""
        if start.tzinfo is None:
            msg = "a shifted clock needs a timezone-aware start"
            raise ValueError(msg)
        self._real = real or RealClock()
        self._offset = start - self._real.now()
        self._tz = start.tzinfo

    def now(self) -> datetime:
        """The shifted instant, in the start's timezone (as a scenario's ``at`` is written)."""
        return (self._real.now() + self._offset).astimezone(self._tz)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """A timer in real time: the countdown the trainee sees is real seconds."""
        return self._real.call_later(seconds, callback)
