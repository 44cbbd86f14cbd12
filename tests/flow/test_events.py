"""The event contract of one call: gap-free sequences, known types, everything in the outbox, no secrets."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from ivr.events import SPECVERSION, CloudEvent, EventType, partition_of, ticket_topic, topic_for

EST = timezone(timedelta(hours=-5))
ANNA, GLOBEX, ACME = "+15550100001", "+15550200002", "+15550200001"
EVENT_TYPES = {e.value for e in EventType}

#: Calls touching every branch that emits: sales, grants, new tickets, denials, lockout, hang-up, fallbacks.
SCRIPTS = [
    pytest.param(["1"], ANNA, id="sales"),
    pytest.param(["2", "1", "2", "1234500001#", "2"], ANNA, id="code-ticket"),
    pytest.param(["2", "1", "1", "1000001#"], ANNA, id="ticket-id"),
    pytest.param(["2", "2", "3", "40000002#", "1"], GLOBEX, id="key-ticket"),
    pytest.param(["2", "2", "3", "40000001#", "1"], ACME, id="premier"),
    pytest.param(["2", "1", "2", "9999999999#", "2", "9999999998#", "2", "9999999997#"], ANNA, id="exhausted"),
    pytest.param(["2", "1", "2", "1234500001#", "hangup"], ANNA, id="hangup-at-severity"),
    pytest.param([], ANNA, id="silent"),
    pytest.param(["2", "1", "1", "1000002#", "1", "1000001#"], ANNA, id="denied-then-granted"),
]


@pytest.mark.parametrize(("script", "number"), SCRIPTS)
async def test_events_are_numbered_one_to_n_per_call_with_no_gaps(run_call, script, number):
    """``sequence`` runs 1..n with no gap, every event's subject is the call id and its source this IVR."""
    record = await run_call(script, number=number, call_id="call-under-test")
    events = record.events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert {e.subject for e in events} == {"call-under-test"}
    assert {e.source for e in events} == {"ivr-1"}
    assert {e.specversion for e in events} == {SPECVERSION}
    assert len({e.id for e in events}) == len(events)
    assert events[0].type == EventType.CALL_STARTED
    assert events[-1].type == EventType.CALL_ENDED
    assert [e.type for e in events].count(EventType.CALL_ENDED) == 1


@pytest.mark.parametrize(("script", "number"), SCRIPTS)
async def test_every_event_type_is_a_known_event_type(run_call, script, number):
    """Every type a call emits is an ``EventType`` on its topic (a ticket: its contract's partition)."""
    record = await run_call(script, number=number)
    for event in record.events:
        assert event.type in EVENT_TYPES
        if event.type == EventType.TICKET_CREATED:
            assert event.topic == ticket_topic(partition_of(event.data["contract"]))
        else:
            assert event.topic == topic_for(event.type)
        assert event.topic.startswith("ivr/v2/")


@pytest.mark.parametrize(("script", "number"), SCRIPTS)
async def test_every_event_reaches_the_outbox_once_in_order(run_call, ivr_db, script, number):
    """Nothing is lost on the way out: the outbox holds each event once, in emission order, as emitted."""
    record = await run_call(script, number=number)
    rows = ivr_db("SELECT event_id, topic, payload, sent_at FROM outbox ORDER BY seq")
    assert [r[0] for r in rows] == [e.id for e in record.events]
    for (_, topic, payload, sent_at), event in zip(rows, record.events, strict=True):
        assert topic == event.topic
        assert json.loads(payload) == json.loads(event.to_json())
        assert CloudEvent.from_dict(json.loads(payload)) == event
        assert sent_at is not None, "settle() carried it to the ledger"


@pytest.mark.parametrize(("script", "number"), SCRIPTS)
async def test_event_times_follow_the_call_clock(run_call, script, number):
    """Event times are the call's (virtual) clock, aware, and never go backwards."""
    start = datetime(2026, 11, 17, 10, 0, tzinfo=EST)
    record = await run_call(script, number=number, at=start)
    times = [datetime.fromisoformat(e.time) for e in record.events]
    assert times[0] == start
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)


async def test_ledger_answers_are_events_of_their_own(run_call, system):
    """The ledger announces a deduction in its own event, tied to the ticket and the triggering event."""
    record = await run_call(["2", "1", "2", "1234500001#", "2"], number=ANNA)
    created = next(e for e in record.events if e.type == EventType.TICKET_CREATED)
    history = await system.ledger.history("K-ANNA-STD")
    assert [(h.ticket_id, h.outcome, h.balance_after, h.event_id) for h in history] == [
        ("2000001", "deducted", 4, created.id),
    ]


# -- secrets -----------------------------------------------------------------------------------

SECRET_SCRIPTS = [
    pytest.param(["2", "1", "2", "1234500001#", "2"], ANNA, "1234500001", id="valid-code"),
    pytest.param(["2", "1", "2", "1234500009#", "hangup"], ANNA, "1234500009", id="unknown-code"),
    pytest.param(["2", "1", "2", "1234500005#", "hangup"], ANNA, "1234500005", id="code-no-incidents"),
    pytest.param(["2", "1", "2", "12345000012#", "hangup"], ANNA, "12345000012", id="code-too-long"),
    pytest.param(["2", "1", "2", "1234500001", "hangup"], ANNA, "1234500001", id="code-no-hash"),
    pytest.param(["2", "2", "3", "40000002#", "1"], GLOBEX, "40000002", id="valid-key"),
    pytest.param(["2", "2", "3", "40000009#", "hangup"], GLOBEX, "40000009", id="unknown-key"),
    pytest.param(["2", "2", "3", "40000003#", "hangup"], GLOBEX, "40000003", id="key-not-listed"),
    pytest.param(["2", "2", "3", "400000021#", "hangup"], GLOBEX, "400000021", id="key-too-long"),
    pytest.param(["2", "2", "3", "1234500001#", "hangup"], GLOBEX, "1234500001", id="code-at-key-prompt"),
]


def everything_said(record) -> str:
    """A call's events, prompts (names and text), decisions and path, serialized to one text."""
    call = record.call
    parts = [e.to_json() for e in record.events]
    parts += [f"{h.name}: {h.text}" for h in record.heard]
    parts += [json.dumps(dataclasses.asdict(d), default=str) for d in call.decisions]
    parts += [repr(d) for d in call.decisions]
    parts += [*call.prompts, *call.path, str(call.reason), str(call.rule), str(call.ticket_id)]
    return "\n".join(parts)


@pytest.mark.parametrize(("script", "number", "secret"), SECRET_SCRIPTS)
async def test_no_code_or_key_appears_whole_in_what_a_call_produces(run_call, ivr_db, script, number, secret):
    """Support codes and license keys never appear whole in a call's events, prompts, decisions or outbox."""
    record = await run_call(script, number=number)
    assert secret not in everything_said(record)
    assert all(secret not in payload for (payload,) in ivr_db("SELECT payload FROM outbox"))


@pytest.mark.parametrize(
    ("script", "number", "secret"),
    [
        pytest.param(["2", "1", "1", "1234500001#", "hangup"], ANNA, "1234500001", id="code-at-ticket-prompt"),
        pytest.param(["2", "2", "1", "40000002#", "hangup"], GLOBEX, "40000002", id="key-at-ticket-prompt"),
    ],
)
async def test_a_code_typed_at_the_ticket_prompt_is_not_kept_whole(run_call, script, number, secret):
    """A caller who types their support code or key at the ticket prompt does not have it recorded whole."""
    record = await run_call(script, number=number)
    assert secret not in everything_said(record)
