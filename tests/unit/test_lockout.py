"""Guessing is stopped: 5 failures within 15 minutes lock a number for 15 minutes from the 5th."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.auth.decisions import Reason, Rule
from ivr.auth.lockout import (
    LOCKOUT_FOR,
    LOOKBACK,
    MAX_FAILURES,
    WINDOW,
    after_failure,
    counted_since,
    locked_until,
    locks,
    refuses,
)

T0 = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)


def minutes(*offsets: float) -> list[datetime]:
    """Failure instants ``offsets`` minutes after T0."""
    return [T0 + timedelta(minutes=m) for m in offsets]


def test_constants_match_the_domain():
    """5 failures, a 15-minute window, a 15-minute lockout."""
    assert (5, timedelta(minutes=15), timedelta(minutes=15)) == (MAX_FAILURES, WINDOW, LOCKOUT_FOR)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_four_failures_or_fewer_never_lock(count):
    """Up to 4 failures, however close together, do not lock."""
    failures = minutes(*[0.1 * i for i in range(count)])
    assert locked_until(failures, T0 + timedelta(minutes=1)) is None


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param((0, 0, 0, 0, 0), id="same-instant"),
        pytest.param((0, 1, 2, 3, 4), id="over-4-minutes"),
        pytest.param((0, 5, 10, 14, 15), id="exactly-15-minutes"),
        pytest.param((15, 0, 10, 5, 14), id="unordered"),
    ],
)
def test_five_within_fifteen_minutes_lock_for_fifteen_from_the_fifth(offsets):
    """The 5th failure within 15 minutes starts a 15-minute lockout from its own instant."""
    failures = minutes(*offsets)
    fifth = max(failures)
    assert locked_until(failures, fifth) == fifth + LOCKOUT_FOR
    assert locked_until(failures, fifth + timedelta(minutes=14, seconds=59)) == fifth + LOCKOUT_FOR


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param((0, 4, 8, 12, 15.01), id="just-over-15"),
        pytest.param((0, 10, 20, 30, 40), id="every-10-minutes"),
        pytest.param((0, 1, 2, 3, 30, 31, 32, 33), id="two-groups-of-four"),
    ],
)
def test_five_spread_over_more_than_fifteen_minutes_do_not_lock(offsets):
    """No 5 failures fall within any 15-minute window: no lockout."""
    failures = minutes(*offsets)
    assert locked_until(failures, max(failures)) is None


def test_lockout_expires_fifteen_minutes_after_the_fifth():
    """At the instant the lockout ends (and after) the number is free again."""
    failures = minutes(0, 1, 2, 3, 4)
    end = T0 + timedelta(minutes=4) + LOCKOUT_FOR
    assert locked_until(failures, end - timedelta(microseconds=1)) == end
    assert locked_until(failures, end) is None
    assert locked_until(failures, end + timedelta(hours=1)) is None


def test_a_later_group_of_five_counts_from_its_own_fifth():
    """An old, expired group does not hide a new one: the most recent 5-in-15 decides."""
    failures = minutes(0, 1, 2, 3, 4, 60, 61, 62, 63, 64)
    assert locked_until(failures, T0 + timedelta(minutes=65)) == T0 + timedelta(minutes=64) + LOCKOUT_FOR


def test_old_failures_combine_with_new_ones_inside_the_window():
    """Failures from earlier calls count as long as 5 of them fit in 15 minutes."""
    failures = minutes(0, 2, 4, 10, 14)
    assert locked_until(failures, T0 + timedelta(minutes=14)) == T0 + timedelta(minutes=29)


def test_failures_are_read_back_as_far_as_a_window_and_a_lockout():
    """Five failures spread over a whole window lock until 15 minutes after: older ones never matter."""
    now = T0 + timedelta(hours=1)
    assert counted_since(now) == now - WINDOW - LOCKOUT_FOR == now - LOOKBACK
    first = counted_since(now)
    failures = [first + timedelta(minutes=m) for m in (0, 5, 10, 14, 15)]
    assert locked_until(failures, now - timedelta(microseconds=1)) == now


@pytest.mark.parametrize(("earlier", "locks_it"), [((0, 1, 2), False), ((0, 1, 2, 3), True), ((0, 1, 2, 3, 3), True)])
def test_the_failure_being_decided_counts_once(earlier, locks_it):
    """Four earlier failures and this one make five: locked for 15 minutes from this one; three do not."""
    now = T0 + timedelta(minutes=4)
    until = after_failure(minutes(*earlier), now)
    assert until == (now + LOCKOUT_FOR if locks_it else None)


def test_a_failure_outside_the_window_of_the_earlier_ones_locks_nothing():
    """Four failures over 15 minutes ago and one now are not five within 15 minutes."""
    assert after_failure(minutes(0, 1, 2, 3), T0 + timedelta(minutes=15, seconds=1)) is None


def test_a_locked_call_is_refused_saying_until_when():
    """The refusal names the lockout rule and reason, the number and the end of the lock."""
    decision = refuses("+15550100001", T0 + LOCKOUT_FOR)
    assert (decision.granted, decision.rule, decision.reason) == (False, Rule.LOCKOUT, Reason.LOCKED_OUT)
    assert decision.detail == "caller +15550100001 is locked out until 15:15:00 UTC"


def test_the_locking_failure_names_the_count_and_the_window():
    """The failure that locks says how many failures within how many minutes, from which number."""
    decision = locks("+15550100001")
    assert (decision.granted, decision.rule, decision.reason) == (False, Rule.LOCKOUT, Reason.LOCKED_OUT)
    assert decision.detail == "5 failures within 15 minutes from +15550100001"
