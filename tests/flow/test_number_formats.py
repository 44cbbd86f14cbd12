"""One telephone line is one number however it is written: the lockout cannot be dodged by formatting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ivr.auth.decisions import Reason, Rule
from ivr.events import EventType
from ivr.phone import InvalidNumberError, normalize

EST = timezone(timedelta(hours=-5))
T0 = datetime(2026, 11, 17, 10, 0, tzinfo=EST)
LINE = "+15550100001"
#: The same line as a careless caller-ID feed, a trainer or an attacker might write it.
FORMATS = [
    "15550100001",
    "+1 555 010 0001",
    "+1-555-010-0001",
    "(555) 010-0001",
    " +15550100001",
    "\uff0b15550100001",  # a full-width plus
    "+\u0661\u0665\u0665\u0665\u0660\u0661\u0660\u0660\u0660\u0660\u0661",  # Arabic-Indic digits
]
BAD = ["2", "9999999999#"]
START = ["2", "1"]


async def lock(run_call, number=LINE):
    """Five failures from ``number``, over two calls in four minutes: the line is locked."""
    await run_call([*START, *BAD * 3], at=T0, number=number)
    second = await run_call([*START, *BAD * 2], at=T0 + timedelta(minutes=4), number=number)
    assert second.call.reason is Reason.LOCKED_OUT


@pytest.mark.parametrize("written", FORMATS)
async def test_a_locked_line_written_another_way_is_still_locked(run_call, written):
    """After 5 failures from +15550100001, a call from the same line in another format goes to the lockout."""
    await lock(run_call)
    record = await run_call([*START, "2", "1234500001#", "1"], at=T0 + timedelta(minutes=5), number=written)
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.LOCKED_OUT, Rule.LOCKOUT)
    assert call.path == ["main_menu", "caller_kind", "lockout_check", "fallback"]
    assert call.caller == LINE


@pytest.mark.parametrize("written", FORMATS)
async def test_failures_in_mixed_formats_add_up_to_one_lockout(run_call, written):
    """Failures from one line written two ways count together, and every event names the E.164 number."""
    await run_call([*START, *BAD * 3], at=T0, number=LINE)
    second = await run_call([*START, *BAD * 2], at=T0 + timedelta(minutes=4), number=written)
    assert second.call.reason is Reason.LOCKED_OUT
    locked = [e for e in second.events if e.type == EventType.AUTH_LOCKED_OUT]
    assert [e.data["caller"] for e in locked] == [LINE]
    started = next(e for e in second.events if e.type == EventType.CALL_STARTED)
    assert started.data["caller"] == LINE


@pytest.mark.parametrize("written", ["", "   ", "not a number", "+1555", "+15550100001 ext. 5", "555 0100"])
async def test_a_number_that_is_no_telephone_number_is_refused_before_the_call(run_call, ivr_db, written):
    """The engine refuses a call from something that is not a possible number: no event, no failure recorded."""
    with pytest.raises(InvalidNumberError, match="is not a telephone number"):
        await run_call([*START, *BAD], at=T0, number=written)
    assert ivr_db("SELECT COUNT(*) FROM outbox") == [(0,)]
    assert ivr_db("SELECT COUNT(*) FROM auth_failures") == [(0,)]


def test_normalize_is_idempotent_on_e164():
    """A number already in E.164 comes back unchanged, so normalizing twice is harmless."""
    assert normalize(LINE) == LINE
    assert normalize(normalize("(555) 010-0001")) == LINE
