"""Guessing is stopped: 5 failed authorizations from one number within 15 minutes lock it out.

Pure over the failure instants the directory keeps per caller number, so the window arithmetic
is tested without a database or a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LOCKOUT_FOR", "LOOKBACK", "MAX_FAILURES", "WINDOW", "locked_until"]

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
LOCKOUT_FOR = timedelta(minutes=15)
#: How far back failures can still matter: 5 spread over a whole window, then the lock after it.
LOOKBACK = WINDOW + LOCKOUT_FOR


def locked_until(failures: Sequence[datetime], now: datetime) -> datetime | None:
    """When the number's lockout ends, or ``None`` if it is not locked at ``now``.

    A lockout starts at the failure that makes 5 within 15 minutes and lasts 15 minutes from it.
    Failures made while locked cannot happen (a locked call never reaches a lookup), so the most
    recent such failure is the one that counts.
    """
    ordered = sorted(failures)
    for i in range(len(ordered) - 1, MAX_FAILURES - 2, -1):
        last = ordered[i]
        if last - ordered[i - MAX_FAILURES + 1] <= WINDOW:
            until = last + LOCKOUT_FOR
            return until if now < until else None
    return None
