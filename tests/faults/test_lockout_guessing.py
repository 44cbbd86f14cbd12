"""1,000 wrong support codes from one number within an hour: the lockout holds, the directory is spared."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog

from ivr.auth import lockout
from ivr.auth.decisions import Reason
from ivr.callers import HANGUP, Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.events import EventType
from tests.conftest import TUESDAY_10AM

GUESSER = "+15550666666"
GUESSES = 1_000  # the same in short and full: virtual time makes the hour free
SPACING = timedelta(milliseconds=3_600)  # 1,000 calls in one hour


class LookupCounter:
    """Wraps the directory's ``find_code`` from outside: the virtual instant of every lookup that reaches it."""

    def __init__(self, directory, clocks: dict[str, VirtualClock]):
        """Replace ``directory.find_code`` with this counter; ``clocks`` gives each call's virtual clock."""
        self.at: list[datetime] = []
        self._find = directory.find_code
        self._clocks = clocks
        directory.find_code = self

    def __call__(self, code):
        """Note the call's virtual instant, then look up."""
        call_id = structlog.contextvars.get_contextvars()["call_id"]  # bound by the engine for each call
        self.at.append(self._clocks[call_id].now())
        return self._find(code)


def expected_lookups(starts: list[datetime]) -> list[datetime]:
    """The rule written out on its own: which calls reach the directory.

    A call reaches it unless 5 failures within 15 minutes lock the number for 15 minutes from the fifth.
    """
    failures: list[datetime] = []
    reached = []
    for now in starts:
        recent = [f for f in failures if f > now - lockout.LOOKBACK]
        locked = any(
            recent[i] - recent[i - 4] <= lockout.WINDOW and now < recent[i] + lockout.LOCKOUT_FOR
            for i in range(4, len(recent))
        )
        if not locked:
            reached.append(now)
            failures.append(now)
    return reached


async def test_a_thousand_wrong_codes_in_an_hour_reach_the_directory_at_most_five_per_15_minutes(system):
    """One number, one wrong code per call, a call every 3.6 s: at most 5 lookups in any 15 minutes, the rest locked."""
    clocks: dict[str, VirtualClock] = {}
    counter = LookupCounter(system.directory, clocks)
    starts = [TUESDAY_10AM + i * SPACING for i in range(GUESSES)]
    records = []
    for i, start in enumerate(starts):
        clock = clocks[f"guess-{i:04d}"] = VirtualClock(start=start)
        code = f"{9_000_000_000 + i}"  # a different wrong code every time
        caller = ScriptedCaller([Press("212"), Press(code + "#"), HANGUP], clock=clock)
        records.append(await system.engine.run_call(caller, clock=clock, number=GUESSER, call_id=f"guess-{i:04d}"))

    assert counter.at == expected_lookups(starts)
    assert starts[-1] - starts[0] < timedelta(hours=1)
    for n, first in enumerate(counter.at):
        within = [t for t in counter.at[n:] if t - first < lockout.WINDOW]
        assert len(within) <= lockout.MAX_FAILURES, f"{len(within)} lookups within 15 minutes from {first}"
    locked_at_once = [r for r in records if EventType.AUTH_DENIED not in {e.type for e in r.events}]
    assert len(locked_at_once) == GUESSES - len(counter.at)  # every call that did not look up was stopped first
    for record in locked_at_once:
        assert (record.call.outcome, record.call.reason) == ("fallback", Reason.LOCKED_OUT)
        assert record.call.path == ["main_menu", "caller_kind", "lockout_check", "fallback"]
    lockouts = [e for r in records for e in r.events if e.type == EventType.AUTH_LOCKED_OUT]
    assert len(counter.at) == 20  # 4 bursts of 5 in the hour: each locks the number for 15 minutes
    assert len(lockouts) == 4
    assert [datetime.fromisoformat(e.data["until"]) for e in lockouts] == [
        counter.at[n] + lockout.LOCKOUT_FOR for n in (4, 9, 14, 19)
    ]


async def test_fifty_calls_at_once_from_one_number_reach_the_directory_at_most_five_times(system):
    """50 guessing calls live at once from one number: still at most 5 lookups, and the number locked."""
    clocks: dict[str, VirtualClock] = {}
    counter = LookupCounter(system.directory, clocks)

    async def guess(i):
        clock = clocks[f"burst-{i:02d}"] = VirtualClock(start=TUESDAY_10AM)
        caller = ScriptedCaller([Press("212"), Press(f"{9_100_000_000 + i}#"), HANGUP], clock=clock)
        return await system.engine.run_call(caller, clock=clock, number=GUESSER, call_id=f"burst-{i:02d}")

    records = await asyncio.gather(*(guess(i) for i in range(50)))
    assert len(counter.at) <= lockout.MAX_FAILURES
    assert any(e.type == EventType.AUTH_LOCKED_OUT for r in records for e in r.events)
