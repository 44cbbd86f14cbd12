"""Whole calls through the real engine, directory and ledger (SQLite files in tmp_path): R1-R11."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from ivr.auth.decisions import Reason, Rule
from ivr.callers import Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.events import EventType
from tests.conftest import DEFAULT_WORLD_PATH

EST = timezone(timedelta(hours=-5))
TUESDAY_10AM = datetime(2026, 11, 17, 10, 0, tzinfo=EST)
SATURDAY_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=EST)
TUESDAY_9PM = datetime(2026, 11, 17, 21, 0, tzinfo=EST)
FIXTURE_TICKETS = len(load_world(DEFAULT_WORLD_PATH).tickets)

ANNA, BEN, FAY = "+15550100001", "+15550100002", "+15550100006"
ACME, GLOBEX, INITECH = "+15550200001", "+15550200002", "+15550200003"

TECH_CONSUMER = ["2", "1"]
TECH_BUSINESS = ["2", "2"]
LICENSING_BUSINESS = ["3", "2"]


def types(record) -> list[str]:
    """The event types of a call, in order."""
    return [str(e.type) for e in record.events]


def of_type(record, event_type) -> list:
    """A call's events of one type."""
    return [e for e in record.events if e.type == event_type]


async def test_sales_needs_no_authorization_and_deducts_nothing(run_call, system):
    """R1: pressing 1 goes straight to sales, with rule R1 and no incident deducted."""
    record = await run_call(["1"], number="+15550199999")
    call = record.call
    assert (call.outcome, call.rule, call.reason, call.queue) == ("sales", Rule.R1, None, "sales")
    assert call.path == ["main_menu", "sales"]
    assert call.prompts == ["main_menu", "connecting_sales"]
    assert types(record) == [EventType.CALL_STARTED, EventType.CALL_ROUTED, EventType.CALL_ENDED]
    assert await system.ledger.deducted() == {}


async def test_support_code_creates_one_ticket_and_deducts_once(run_call, system, ivr_db):
    """R4, R7, R9, R10: a valid code opens ticket 2000001, reads it back and deducts exactly one incident."""
    record = await run_call([*TECH_CONSUMER, "2", "1234500001#", "2"], number=ANNA)
    call = record.call
    assert (call.outcome, call.rule, call.ticket_id) == ("routed", Rule.R4, "2000001")
    assert (call.queue, call.priority) == ("consumer-technical", 3)
    assert call.prompts == [
        "main_menu",
        "caller_kind",
        "auth_method_consumer",
        "enter_code",
        "severity",
        "case_number",
        "connecting",
    ]
    assert "2 0 0 0 0 0 1" in next(h.text for h in record.heard if h.name == "case_number")
    assert types(record) == [
        EventType.CALL_STARTED,
        EventType.AUTH_GRANTED,
        EventType.TICKET_CREATED,
        EventType.CALL_ROUTED,
        EventType.CALL_ENDED,
    ]
    created = of_type(record, EventType.TICKET_CREATED)[0].data
    assert (created["ticket"], created["contract"], created["deduct"], created["severity"]) == (
        "2000001",
        "K-ANNA-STD",
        True,
        "B",
    )
    assert await system.ledger.deducted() == {"K-ANNA-STD": 1}
    await system.settle()
    assert await system.ledger.deducted() == {"K-ANNA-STD": 1}, "a second settle must not deduct again"
    assert (await system.ledger.balances())["K-ANNA-STD"] == (5, 4)
    assert ivr_db("SELECT balance FROM balances WHERE contract_id = 'K-ANNA-STD'") == [(4,)]
    assert ivr_db("SELECT id, contract_id, severity, call_id FROM tickets WHERE id = '2000001'") == [
        ("2000001", "K-ANNA-STD", "B", call.id),
    ]
    assert (await system.ledger.verify()).ok


async def test_two_code_calls_deduct_twice_and_number_tickets_in_turn(run_call, system):
    """Each new ticket under a limited contract costs one incident: two calls, two tickets, two deductions."""
    first = await run_call([*TECH_CONSUMER, "2", "1234500001#", "3"], number=ANNA)
    second = await run_call([*TECH_CONSUMER, "2", "1234500001#", "4"], number=ANNA)
    assert (first.call.ticket_id, second.call.ticket_id) == ("2000001", "2000002")
    assert second.call.priority == 1
    assert await system.ledger.deducted() == {"K-ANNA-STD": 2}


@pytest.mark.parametrize(
    ("script", "number", "rule", "queue", "priority"),
    [
        pytest.param([*TECH_CONSUMER, "1", "1000001#"], ANNA, Rule.R2, "consumer-technical", 3, id="r2-open"),
        pytest.param([*TECH_BUSINESS, "1", "1000102#"], GLOBEX, Rule.R2, "business-technical", 1, id="r2-pending"),
        pytest.param([*TECH_CONSUMER, "1", "1000003#"], BEN, Rule.R6, "consumer-technical", 2, id="r6-per-incident"),
        pytest.param([*LICENSING_BUSINESS, "1", "1000103#"], INITECH, Rule.R3, "business-licensing", 1, id="r3"),
        pytest.param([*TECH_BUSINESS, "1", "1000101#"], ACME, Rule.R2, "business-technical", 5, id="r2-premier-a"),
    ],
)
async def test_ticket_authorization_joins_the_ticket_and_never_deducts(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    run_call,
    system,
    ivr_db,
    script,
    number,
    rule,
    queue,
    priority,
):
    """R2/R3/R6: a ticket ID joins the existing ticket: routed by its rule, no new ticket, nothing deducted."""
    record = await run_call(script, number=number)
    call = record.call
    assert (call.outcome, call.rule, call.queue, call.priority) == ("routed", rule, queue, priority)
    assert call.ticket_id == script[-1].rstrip("#")
    assert "severity" not in call.path
    assert "creating_ticket" not in call.path
    assert EventType.TICKET_CREATED not in types(record)
    granted = of_type(record, EventType.AUTH_GRANTED)[0].data
    assert (granted["deduct"], granted["ticket"], granted["rule"]) == (False, call.ticket_id, rule)
    assert await system.ledger.deducted() == {}
    assert ivr_db("SELECT COUNT(*) FROM tickets") == [(FIXTURE_TICKETS,)]


async def test_per_incident_ticket_authorizes_every_call_about_it(run_call, system):
    """R6: the per-incident ticket authorizes as many calls as needed, with no deduction and balance 0."""
    for _ in range(3):
        record = await run_call([*TECH_CONSUMER, "1", "1000003#"], number=BEN)
        assert (record.call.outcome, record.call.rule) == ("routed", Rule.R6)
    assert await system.ledger.deducted() == {}
    assert (await system.ledger.balances())["K-BEN-PPI"] == (0, 0)


@pytest.mark.parametrize(
    ("script", "number", "rule", "reason"),
    [
        pytest.param([*TECH_CONSUMER, "1", "1000002#"], ANNA, Rule.R2, Reason.TICKET_CLOSED, id="closed"),
        pytest.param([*TECH_CONSUMER, "1", "9999999#"], ANNA, Rule.R2, Reason.UNKNOWN_TICKET, id="unknown-ticket"),
        pytest.param([*TECH_CONSUMER, "1", "1000004#"], ANNA, Rule.R2, Reason.CONTRACT_EXPIRED, id="ticket-expired"),
        pytest.param([*TECH_CONSUMER, "1", "1000005#"], ANNA, Rule.R2, Reason.NO_INCIDENTS, id="ticket-no-incidents"),
        pytest.param([*LICENSING_BUSINESS, "1", "1000105#"], INITECH, Rule.R2, Reason.TICKET_CLOSED, id="r3-closed"),
        pytest.param([*TECH_BUSINESS, "1", "1000104#"], INITECH, Rule.R2, Reason.CONTRACT_EXPIRED, id="r3-technical"),
        pytest.param([*TECH_CONSUMER, "2", "9999999999#"], ANNA, Rule.R4, Reason.UNKNOWN_CODE, id="unknown-code"),
        pytest.param([*TECH_CONSUMER, "2", "1234500003#"], ANNA, Rule.R4, Reason.NO_PHONE_SUPPORT, id="complimentary"),
        pytest.param([*TECH_CONSUMER, "2", "1234500004#"], ANNA, Rule.R4, Reason.CONTRACT_EXPIRED, id="code-expired"),
        pytest.param([*TECH_CONSUMER, "2", "1234500005#"], ANNA, Rule.R4, Reason.NO_INCIDENTS, id="code-no-incidents"),
        pytest.param(
            [*TECH_BUSINESS, "2", "4000000005#"], ACME, Rule.R4, Reason.CONTRACT_NOT_STARTED, id="not-started"
        ),
        pytest.param([*TECH_BUSINESS, "3", "99999999#"], GLOBEX, Rule.R5, Reason.UNKNOWN_KEY, id="unknown-key"),
        pytest.param([*TECH_BUSINESS, "3", "40000003#"], GLOBEX, Rule.R5, Reason.PRODUCT_NOT_ELIGIBLE, id="not-listed"),
        pytest.param([*TECH_BUSINESS, "3", "40000005#"], GLOBEX, Rule.R5, Reason.NO_PHONE_SUPPORT, id="key-no-phone"),
        pytest.param([*TECH_BUSINESS, "3", "40000004#"], GLOBEX, Rule.R5, Reason.CONTRACT_EXPIRED, id="key-expired"),
    ],
)
async def test_a_denial_names_its_rule_and_reason_and_returns_to_the_method_menu(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    run_call,
    system,
    ivr_db,
    script,
    number,
    rule,
    reason,
):
    """A failed authorization is told to the caller, uses one attempt, and goes back to the method menu."""
    record = await run_call([*script, "hangup"], number=number)
    call = record.call
    assert call.outcome == "abandoned"
    assert call.attempts == 1
    assert call.path[-3:] == ["authorizing", "auth_method", "abandoned"]
    denial = call.decisions[-1]
    assert (denial.granted, denial.rule, denial.reason) == (False, rule, reason)
    assert f"denied_{reason}" in call.prompts
    denied = of_type(record, EventType.AUTH_DENIED)
    assert [(e.data["rule"], e.data["reason"], e.data["attempt"]) for e in denied] == [(rule, reason, 1)]
    assert await system.ledger.deducted() == {}
    assert ivr_db("SELECT COUNT(*) FROM tickets") == [(FIXTURE_TICKETS,)]
    assert ivr_db("SELECT COUNT(*) FROM auth_failures WHERE caller = ?", number) == [(1,)]


@pytest.mark.parametrize(
    ("script", "number", "contract", "deducted", "priority"),
    [
        pytest.param([*TECH_BUSINESS, "3", "40000002#", "1"], GLOBEX, "K-GLOBEX-STD", 1, 4, id="limited"),
        pytest.param([*TECH_BUSINESS, "3", "40000001#", "1"], ACME, "K-ACME-PREM", 0, 5, id="premier-unlimited"),
        pytest.param([*TECH_BUSINESS, "2", "4000000001#", "4"], ACME, "K-ACME-PREM", 0, 2, id="code-unlimited"),
    ],
)
async def test_license_key_and_unlimited_contracts(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    run_call, system, script, number, contract, deducted, priority
):
    """R5: a listed product's key opens a ticket; one incident is deducted if limited, none if unlimited."""
    record = await run_call(script, number=number)
    call = record.call
    assert (call.outcome, call.ticket_id, call.priority) == ("routed", "2000001", priority)
    assert of_type(record, EventType.TICKET_CREATED)[0].data["deduct"] is bool(deducted)
    assert (await system.ledger.deducted()).get(contract, 0) == deducted
    assert (await system.ledger.verify()).ok


async def test_consumers_are_not_offered_license_keys(run_call):
    """R5 is business only: a consumer pressing 3 at the method menu is a no-match."""
    record = await run_call([*TECH_CONSUMER, "3", "hangup"], number=ANNA)
    assert record.call.prompts[-2:] == ["no_match", "auth_method_consumer"]
    assert record.call.state == "abandoned"
    assert "key_entry" not in record.call.path


@pytest.mark.parametrize(
    ("script", "number", "at"),
    [
        pytest.param([*TECH_CONSUMER, "2", "1234500001#"], ANNA, SATURDAY_NOON, id="code-saturday"),
        pytest.param([*TECH_CONSUMER, "2", "1234500001#"], ANNA, TUESDAY_9PM, id="code-evening"),
        pytest.param([*TECH_CONSUMER, "1", "1000001#"], ANNA, SATURDAY_NOON, id="ticket-saturday"),
        pytest.param([*TECH_BUSINESS, "3", "40000006#"], GLOBEX, TUESDAY_10AM + timedelta(hours=1), id="berlin-17"),
    ],
)
async def test_outside_hours_makes_no_ticket_and_deducts_nothing(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    run_call, system, ivr_db, script, number, at
):
    """R8: outside the contract's hours the caller hears the hours and goes to the fallback, with no ticket."""
    record = await run_call(script, number=number, at=at)
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.OUTSIDE_HOURS, Rule.R8)
    assert call.prompts[-2:] == ["outside_hours", "fallback_offer"]
    assert EventType.TICKET_CREATED not in types(record)
    assert await system.ledger.deducted() == {}
    assert ivr_db("SELECT COUNT(*) FROM tickets") == [(FIXTURE_TICKETS,)]
    assert ivr_db("SELECT COUNT(*) FROM auth_failures") == [(0,)], "being outside hours is no guess"


async def test_berlin_hours_are_open_in_the_morning_new_york_time(run_call, system):
    """R8 with custom hours: 10:00 New York is 16:00 Berlin, inside 09:00-17:00."""
    record = await run_call([*TECH_BUSINESS, "3", "40000006#", "3"], number="+15550200006")
    assert (record.call.outcome, record.call.rule) == ("routed", Rule.R5)
    assert await system.ledger.deducted() == {"K-WAYNE-EU": 1}


@pytest.mark.parametrize(
    ("script", "at"),
    [
        pytest.param([*TECH_BUSINESS, "3", "40000001#", "1"], SATURDAY_NOON, id="key-saturday"),
        pytest.param([*TECH_BUSINESS, "1", "1000101#"], TUESDAY_9PM, id="ticket-evening"),
    ],
)
async def test_premier_out_of_office_hours_is_told_english_only(run_call, script, at):
    """R8: premier support outside weekday office hours is in English only, said before routing."""
    record = await run_call(script, number=ACME, at=at)
    call = record.call
    assert call.outcome == "routed"
    assert call.path[-2:] == ["english_notice", "routed"]
    assert call.prompts[-2:] == ["english_only", "connecting"]
    assert of_type(record, EventType.CALL_ROUTED)[0].data["english_only"] is True


async def test_premier_in_office_hours_has_no_english_notice(run_call):
    """Inside weekday office hours premier support is routed without the notice."""
    record = await run_call([*TECH_BUSINESS, "3", "40000001#", "1"], number=ACME)
    assert "english_notice" not in record.call.path
    assert of_type(record, EventType.CALL_ROUTED)[0].data["english_only"] is False


async def test_last_incident_goes_to_the_first_call_and_the_second_hears_none_left(run_call, system):
    """R7: with one incident left, the first call deducts it and the next is denied ``no_incidents``."""
    first = await run_call([*TECH_CONSUMER, "2", "1234500006#", "2"], number=FAY)
    second = await run_call([*TECH_CONSUMER, "2", "1234500006#", "hangup"], number=FAY)
    assert first.call.outcome == "routed"
    assert second.call.decisions[-1].reason is Reason.NO_INCIDENTS
    assert await system.ledger.deducted() == {"K-FAY-ONE": 1}
    assert (await system.ledger.balances())["K-FAY-ONE"] == (1, 0)


async def test_two_calls_racing_for_the_last_incident_deduct_once(system):
    """R7: two concurrent calls both pass the IVR's check; the ledger deducts for one and rejects the other."""

    async def one(call_id):
        clock = VirtualClock(start=TUESDAY_10AM)
        caller = ScriptedCaller([Press(k) for k in (*TECH_CONSUMER, "2", "1234500006#", "2")], clock=clock)
        return await system.engine.run_call(caller, clock=clock, number=FAY, call_id=call_id)

    records = await asyncio.gather(one("race-1"), one("race-2"))
    assert [r.call.outcome for r in records] == ["routed", "routed"]
    await system.settle()
    assert await system.ledger.deducted() == {"K-FAY-ONE": 1}
    history = await system.ledger.history("K-FAY-ONE")
    assert sorted((e.outcome, e.reason) for e in history) == [("deducted", None), ("rejected", "no_incidents_left")]
    assert (await system.ledger.balances())["K-FAY-ONE"] == (1, 0)
    assert (await system.ledger.verify()).ok


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(["hangup"], id="main-menu"),
        pytest.param([*TECH_CONSUMER, "hangup"], id="method-menu"),
        pytest.param([*TECH_CONSUMER, "2", "12345", "hangup"], id="mid-code"),
        pytest.param([*TECH_CONSUMER, "2", "1234500001", "hangup"], id="code-before-hash"),
        pytest.param([*TECH_CONSUMER, "2", "1234500001#", "hangup"], id="at-severity-after-grant"),
        pytest.param([*TECH_CONSUMER, "1", "100000", "hangup"], id="mid-ticket"),
    ],
)
async def test_hangup_leaves_no_ticket_and_no_deduction(run_call, system, ivr_db, script):
    """A hang-up ends the call where it stands: no ticket, no deduction, and the call still ends cleanly."""
    record = await run_call(script, number=ANNA)
    call = record.call
    assert (call.outcome, call.rule) == ("abandoned", Rule.HANGUP)
    assert types(record)[-1] == EventType.CALL_ENDED
    assert EventType.TICKET_CREATED not in types(record)
    assert ivr_db("SELECT COUNT(*) FROM tickets") == [(FIXTURE_TICKETS,)]
    assert ivr_db("SELECT COUNT(*) FROM tickets WHERE call_id = ?", call.id) == [(0,)]
    assert await system.ledger.deducted() == {}
    assert (await system.ledger.balances())["K-ANNA-STD"] == (5, 5)


@pytest.mark.parametrize(
    ("script", "where"),
    [
        pytest.param([], "main_menu", id="main-menu-silent"),
        pytest.param([*TECH_CONSUMER], "auth_method", id="method-menu-silent"),
        pytest.param([*TECH_CONSUMER, "2", 5, 5, 5], "code_entry", id="silences-in-code-entry"),
        pytest.param([*TECH_CONSUMER, "2", "12", 6, "3", 5, 5], "code_entry", id="digits-then-silence"),
    ],
)
async def test_third_no_input_goes_to_the_fallback(run_call, script, where):
    """Three no-inputs in a row at one prompt send the call to R11's fallback with reason ``no_input``."""
    record = await run_call(script, number=ANNA)
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.NO_INPUT, Rule.INPUT)
    assert call.path[-2:] == [where, "fallback"]
    assert call.prompts.count("no_input") == 3
    assert call.prompts[-1] == "fallback_offer"
    fallback = of_type(record, EventType.CALL_FALLBACK)[0].data
    assert fallback["offered"] == ["web_form", "chat", "self_service"]


async def test_two_no_inputs_then_a_key_carry_on(run_call):
    """Two no-inputs are forgiven: the third input, a key, is taken at the same prompt."""
    record = await run_call([5, 5, "1"], number=ANNA)
    assert record.call.outcome == "sales"
    assert record.call.prompts.count("no_input") == 2


@pytest.mark.parametrize(
    ("script", "prompt"),
    [
        pytest.param(["9", "9", "9"], "no_match", id="menu-no-match"),
        pytest.param([*TECH_CONSUMER, "2", "123#", "#", "12345678901#"], "wrong_length", id="wrong-lengths"),
        pytest.param(["9", 5, "0"], None, id="mixed"),
    ],
)
async def test_third_failure_in_a_row_goes_to_the_fallback(run_call, system, script, prompt):
    """No-match and wrong length count like no-input: the third in a row at one prompt is the fallback."""
    record = await run_call(script, number=ANNA)
    call = record.call
    assert call.outcome == "fallback"
    assert call.rule is Rule.INPUT
    if prompt:
        assert call.prompts.count(prompt) == 3
    assert await system.ledger.deducted() == {}


async def test_wrong_length_is_a_no_match_never_a_lookup(run_call, ivr_db):
    """A wrong length is no guess: it uses no attempt and records no failure for the lockout."""
    record = await run_call([*TECH_CONSUMER, "2", "123#", "hangup"], number=ANNA)
    call = record.call
    assert call.attempts == 0
    assert "authorizing" not in call.path
    assert call.decisions[-1].reason is Reason.WRONG_LENGTH
    assert EventType.AUTH_DENIED not in types(record)
    assert ivr_db("SELECT COUNT(*) FROM auth_failures") == [(0,)]


async def test_star_clears_the_entry_and_replays_the_prompt(run_call):
    """``*`` in a digit entry clears what was typed and plays the prompt again."""
    record = await run_call([*TECH_CONSUMER, "2", "99*", "1234500001#", "2"], number=ANNA)
    assert record.call.outcome == "routed"
    assert record.call.prompts.count("enter_code") == 2


async def test_star_replays_a_menu(run_call):
    """``*`` at a menu plays it again and costs nothing."""
    record = await run_call(["*", "*", "*", "1"], number=ANNA)
    assert record.call.outcome == "sales"
    assert record.call.prompts == ["main_menu"] * 4 + ["connecting_sales"]


async def test_third_failed_attempt_is_attempts_exhausted(run_call, system, ivr_db):
    """Three failed authorizations in one call go to the fallback with ``attempts_exhausted``."""
    bad = ["2", "9999999999#"]
    record = await run_call([*TECH_CONSUMER, *bad, *bad, *bad], number=ANNA)
    call = record.call
    assert (call.outcome, call.reason, call.rule) == ("fallback", Reason.ATTEMPTS_EXHAUSTED, Rule.ATTEMPTS)
    assert call.attempts == 3
    assert call.prompts[-2:] == ["attempts_exhausted", "fallback_offer"]
    assert [e.data["attempt"] for e in of_type(record, EventType.AUTH_DENIED)] == [1, 2, 3]
    assert ivr_db("SELECT COUNT(*) FROM auth_failures WHERE caller = ?", ANNA) == [(3,)]
    assert await system.ledger.deducted() == {}


async def test_attempts_mix_methods(run_call):
    """Attempts count across methods: unknown ticket, closed ticket, then unknown code exhausts them."""
    record = await run_call(
        [*TECH_CONSUMER, "1", "9999999#", "1", "1000002#", "2", "9999999999#"],
        number=ANNA,
    )
    assert record.call.reason is Reason.ATTEMPTS_EXHAUSTED
    assert [d.reason for d in record.call.decisions] == [
        Reason.UNKNOWN_TICKET,
        Reason.TICKET_CLOSED,
        Reason.UNKNOWN_CODE,
    ]


async def test_a_failure_then_success_is_routed(run_call, system):
    """A caller who fails once and then enters a good code is put through with one ticket and one deduction."""
    record = await run_call([*TECH_CONSUMER, "1", "1000002#", "2", "1234500001#", "1"], number=ANNA)
    assert (record.call.outcome, record.call.rule, record.call.attempts) == ("routed", Rule.R4, 1)
    assert await system.ledger.deducted() == {"K-ANNA-STD": 1}


@pytest.mark.parametrize(
    ("script", "replayed"),
    [
        pytest.param([5, "1"], "main_menu", id="no-input-main-menu"),
        pytest.param(["9", "1"], "main_menu", id="no-match-main-menu"),
        pytest.param([*TECH_CONSUMER, "2", "123#", "hangup"], "enter_code", id="wrong-length-code"),
    ],
)
async def test_prompt_is_played_again_after_a_no_input_or_no_match(run_call, script, replayed):
    """Domain: a prompt that gets nothing or a key it does not accept is played again."""
    record = await run_call(script, number=ANNA)
    prompts = record.call.prompts
    assert prompts.count(replayed) == 2
    second = len(prompts) - 1 - prompts[::-1].index(replayed)
    assert prompts[second - 1] in ("no_input", "no_match", "wrong_length")


@pytest.mark.parametrize(
    ("silence", "no_inputs"),
    [(4.9, 0), (5, 1), (9.9, 1), (10, 2)],
)
async def test_silence_counts_one_no_input_per_full_timeout(run_call, silence, no_inputs):
    """Silence shorter than 5 s is nothing; each full 5 s is one no-input, and the key after it still counts."""
    record = await run_call([silence, "1"], number=ANNA)
    assert record.call.outcome == "sales"
    assert record.call.prompts.count("no_input") == no_inputs


async def test_giving_up_at_the_severity_menu_makes_no_ticket_and_deducts_nothing(run_call, system, ivr_db):
    """A caller granted by code who never picks a severity ends in the fallback with no ticket and no deduction."""
    record = await run_call([*TECH_CONSUMER, "2", "1234500001#", "9", "0", "#"], number=ANNA)
    call = record.call
    assert (call.outcome, call.reason) == ("fallback", Reason.NO_MATCH)
    assert call.path[-2:] == ["severity", "fallback"]
    assert EventType.TICKET_CREATED not in types(record)
    assert ivr_db("SELECT COUNT(*) FROM tickets") == [(FIXTURE_TICKETS,)]
    assert await system.ledger.deducted() == {}
