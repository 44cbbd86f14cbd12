"""R2 b and R3 read the ticket's owner in the directory: whole calls through the real engine and SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ivr.auth.decisions import Reason, Rule
from ivr.auth.model import Plan
from ivr.events import EventType

EST = timezone(timedelta(hours=-5))
SATURDAY_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=EST)
GIL, HOOLI, DAN, INITECH = "+15550100007", "+15550200007", "+15550100004", "+15550200003"


def granted(record) -> dict:
    """The data of the call's ``auth.granted`` event."""
    return next(e.data for e in record.events if e.type == EventType.AUTH_GRANTED)


async def test_a_renewed_owner_joins_the_old_ticket_under_the_new_contract(run_call, system):
    """Gil's ticket is under an expired contract; his premier renewal qualifies, and its plan routes the call."""
    record = await run_call(["2", "1", "1", "1000006#"], number=GIL)
    call = record.call
    assert (call.outcome, call.rule, call.ticket_id) == ("routed", Rule.R2, "1000006")
    assert granted(record)["contract"] == "K-GIL-PREM"
    assert "K-GIL-OLD expired on 2025-12-31" in granted(record)["detail"]
    assert call.plan is Plan.PREMIER
    assert call.priority == 4  # severity B (3) + premier (1)
    assert call.decisions[0].contract_id == "K-GIL-PREM"
    assert await system.ledger.deducted() == {}


async def test_the_qualifying_contracts_hours_apply(run_call, system):
    """Hooli's ticket qualifies through K-HOOLI-STD, whose Monday-to-Friday hours refuse a Saturday call (R8)."""
    record = await run_call(["2", "2", "1", "1000106#"], number=HOOLI, at=SATURDAY_NOON)
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.OUTSIDE_HOURS, Rule.R8)
    denied = next(e.data for e in record.events if e.type == EventType.AUTH_DENIED)
    assert (denied["rule"], denied["reason"]) == (Rule.R8, Reason.OUTSIDE_HOURS)
    assert "K-HOOLI-STD" in denied["detail"]
    assert await system.ledger.deducted() == {}


async def test_a_consumer_who_presses_business_gets_no_r3(run_call):
    """R3 reads the owner's kind: Dan (a consumer) pressing "business" on a licensing call is refused by R2 b."""
    record = await run_call(["3", "2", "1", "1000007#", "hangup"], number=DAN)
    assert record.call.decisions[0].rule is Rule.R2
    assert record.call.decisions[0].reason is Reason.CONTRACT_EXPIRED


async def test_a_business_owner_who_presses_consumer_still_gets_r3(run_call):
    """R3 reads the owner's kind: Initech (a business) pressing "consumer" on a licensing call skips R2 b."""
    record = await run_call(["3", "1", "1", "1000103#"], number=INITECH)
    call = record.call
    assert (call.outcome, call.rule, call.ticket_id) == ("routed", Rule.R3, "1000103")
    assert granted(record)["contract"] == "K-INITECH-OLD"
