"""Guessing is stopped: 5 failed authorizations from one number within 15 minutes lock it out.

Pure over the failure instants the directory keeps per caller number, so the window arithmetic
is tested without a database or a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ivr.auth.decisions import Decision, Reason, Rule

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "LOCKOUT_FOR",
    "LOOKBACK",
    "MAX_FAILURES",
    "WINDOW",
    "after_failure",
    "counted_since",
    "locked_until",
    "locks",
    "refuses",
]

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


def counted_since(now: datetime) -> datetime:
    """The oldest failure instant that can still lock the number at ``now`` (read no further back)."""
    return now - LOOKBACK


def after_failure(earlier: Sequence[datetime], now: datetime) -> datetime | None:
    """When the lockout started by a failure at ``now`` ends, or ``None`` if that failure locks nothing.

    ``earlier`` are the number's failures already recorded (from :func:`counted_since` on), not
    this one: the failure being decided is counted here, so it is counted once.
    """
    return locked_until([*earlier, now], now)


def refuses(caller: str, until: datetime) -> Decision:
    """A locked number's call is refused without a lookup, saying until when."""
    return Decision.deny(Rule.LOCKOUT, Reason.LOCKED_OUT, f"caller {caller} is locked out until {until:%H:%M:%S %Z}")


def locks(caller: str) -> Decision:
    """The failure that made ``MAX_FAILURES`` within the window: the lockout, not the denial, ends the call."""
    minutes = int(WINDOW.total_seconds()) // 60
    return Decision.deny(
        Rule.LOCKOUT, Reason.LOCKED_OUT, f"{MAX_FAILURES} failures within {minutes} minutes from {caller}"
    )
