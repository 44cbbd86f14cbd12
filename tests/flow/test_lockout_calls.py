"""Guessing is stopped across calls: 5 failures from one number in 15 minutes lock it for 15 minutes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ivr.auth.decisions import Reason, Rule
from ivr.events import EventType

EST = timezone(timedelta(hours=-5))
T0 = datetime(2026, 11, 17, 10, 0, tzinfo=EST)
GUESSER = "+15550666666"
BAD = ["2", "9999999999#"]
START = ["2", "1"]


def types(record) -> list[str]:
    """The event types of a call, in order."""
    return [str(e.type) for e in record.events]


def at(minutes: float) -> datetime:
    """``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


async def guess(run_call, count, *, minutes, number=GUESSER):
    """One call from ``number`` making ``count`` failed guesses, then hanging up if it still can."""
    return await run_call([*START, *BAD * count, "hangup"], at=at(minutes), number=number)


def assert_locked_straight_away(record):
    """The call went to the fallback from the lockout check: no method menu, no lookup, no failure."""
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.LOCKED_OUT, Rule.LOCKOUT)
    assert call.path == ["main_menu", "caller_kind", "lockout_check", "fallback"]
    assert [d.rule for d in call.decisions] == [Rule.LOCKOUT]
    assert call.prompts[-2:] == ["locked_out", "fallback_offer"]
    assert types(record) == [EventType.CALL_STARTED, EventType.CALL_FALLBACK, EventType.CALL_ENDED]


async def test_five_failures_across_two_calls_lock_and_the_next_call_is_locked_at_once(run_call, ivr_db):
    """3 failures then 2 more in a second call lock the number; a third call is locked before any lookup."""
    first = await guess(run_call, 3, minutes=0)
    assert first.call.reason is Reason.ATTEMPTS_EXHAUSTED
    assert EventType.AUTH_LOCKED_OUT not in types(first)

    second = await guess(run_call, 2, minutes=4)
    call = second.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.LOCKED_OUT, Rule.LOCKOUT)
    assert call.prompts[-3:] == ["denied_unknown_code", "locked_out", "fallback_offer"]
    locked = [e for e in second.events if e.type == EventType.AUTH_LOCKED_OUT]
    assert len(locked) == 1
    fifth = datetime.fromisoformat(next(e for e in reversed(second.events) if e.type == EventType.AUTH_DENIED).time)
    assert locked[0].data["caller"] == GUESSER
    assert locked[0].data["rule"] == Rule.LOCKOUT
    assert datetime.fromisoformat(locked[0].data["until"]) == fifth + timedelta(minutes=15)
    assert types(second).index(EventType.AUTH_LOCKED_OUT) == types(second).index(EventType.AUTH_DENIED) + 2

    third = await run_call([*START, *BAD], at=at(6), number=GUESSER)
    assert_locked_straight_away(third)
    assert ivr_db("SELECT COUNT(*) FROM auth_failures WHERE caller = ?", GUESSER) == [(5,)]


async def test_five_calls_of_one_failure_lock_and_the_sixth_is_locked_at_once(run_call):
    """Five calls each failing once lock on the fifth; the sixth call never reaches a lookup."""
    for i in range(4):
        record = await guess(run_call, 1, minutes=i)
        assert record.call.outcome == "abandoned"
    fifth = await guess(run_call, 1, minutes=4)
    assert fifth.call.reason is Reason.LOCKED_OUT
    assert EventType.AUTH_LOCKED_OUT in types(fifth)
    sixth = await run_call([*START, "2", "1234500001#", "1"], at=at(5), number=GUESSER)
    assert_locked_straight_away(sixth)


async def test_a_locked_number_is_locked_for_tickets_and_keys_too(run_call):
    """The lockout covers code, key and ticket authorization alike: even a business caller is stopped."""
    await guess(run_call, 3, minutes=0)
    await guess(run_call, 2, minutes=1)
    assert_locked_straight_away(await run_call(["3", "2", "1", "1000103#"], at=at(2), number=GUESSER))


async def test_a_locked_number_can_still_reach_sales(run_call):
    """R1 needs no authorization, so a locked-out number still gets to online sales."""
    await guess(run_call, 3, minutes=0)
    await guess(run_call, 2, minutes=1)
    assert (await run_call(["1"], at=at(2), number=GUESSER)).call.outcome == "sales"


async def test_the_lockout_is_per_number(run_call, system):
    """Another caller number is not affected by a lockout."""
    await guess(run_call, 3, minutes=0)
    await guess(run_call, 2, minutes=1)
    record = await run_call([*START, "2", "1234500001#", "1"], at=at(2), number="+15550100001")
    assert (record.call.outcome, record.call.rule) == ("routed", Rule.R4)


async def test_the_lockout_ends_fifteen_minutes_after_the_fifth_failure(run_call):
    """Once 15 minutes have passed since the fifth failure the number may authorize again."""
    await guess(run_call, 3, minutes=0)
    await guess(run_call, 2, minutes=1)
    record = await run_call([*START, "2", "1234500001#", "1"], at=at(1 + 16), number=GUESSER)
    assert (record.call.outcome, record.call.rule) == ("routed", Rule.R4)


async def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(run_call):
    """Five failures that never fit in 15 minutes lock nothing."""
    for minutes in (0, 5, 10, 15.5, 21):
        record = await guess(run_call, 1, minutes=minutes)
        assert EventType.AUTH_LOCKED_OUT not in types(record)
        assert record.call.outcome == "abandoned"


async def test_the_lockout_lasts_fifteen_minutes_from_the_fifth_failure_not_the_first(run_call):
    """Failures at 0 and 4 minutes lock the number until 19 minutes: a call at 16 minutes is still locked."""
    await guess(run_call, 3, minutes=0)
    locked = await guess(run_call, 2, minutes=4)
    assert locked.call.reason is Reason.LOCKED_OUT
    assert_locked_straight_away(await run_call([*START, *BAD], at=at(16), number=GUESSER))
