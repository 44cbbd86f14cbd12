"""R8's English-only notice is judged when the call is routed, not when it was authorized."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ivr.events import EventType

EST = timezone(timedelta(hours=-5))
ACME = "+15550200001"
BY_KEY = ["2", "2", "3", "40000001#"]  # Acme's premier key: a severity is asked, then the ticket is made


def routed(record) -> dict:
    """The data of the call's ``call.routed`` event."""
    return next(e.data for e in record.events if e.type == EventType.CALL_ROUTED)


@pytest.mark.parametrize(
    ("authorized_at", "notice"),
    [
        pytest.param(datetime(2026, 11, 17, 19, 59, 58, tzinfo=EST), True, id="office-closes-meanwhile"),
        pytest.param(datetime(2026, 11, 17, 7, 59, 58, tzinfo=EST), False, id="office-opens-meanwhile"),
    ],
)
async def test_the_notice_follows_the_moment_of_routing(run_call, authorized_at, notice):
    """Authorized 2 s before 20:00 (or 08:00) and routed 4 s later: the notice is judged at routing."""
    record = await run_call([*BY_KEY, 4, "1"], number=ACME, at=authorized_at)
    call = record.call
    assert call.outcome == "routed"
    assert ("english_notice" in call.path) is notice
    assert ("english_only" in call.prompts) is notice
    assert routed(record)["english_only"] is notice


async def test_a_joined_ticket_is_routed_at_authorization(run_call):
    """A ticket ID is routed the moment it is authorized: at 20:00:00 the premier caller hears the notice."""
    record = await run_call(["2", "2", "1", "1000101#"], number=ACME, at=datetime(2026, 11, 17, 20, 0, tzinfo=EST))
    assert record.call.path[-2:] == ["english_notice", "routed"]
    assert routed(record)["english_only"] is True
