"""The ledger service: malformed messages become dead letters with a reason; good ones in the batch still apply."""

from __future__ import annotations

import json

import pytest

from ivr.events import EventType, schema_uri
from ivr.ledger.core import Outcome
from ivr.ledger.service import LedgerService
from ivr.ledger.store import SqliteLedgerStore


def ticket_created(ticket="2000001", *, contract="K-FIVE", deduct=True, event_id=None, **overrides) -> dict:
    """A well-formed ``ivr.ticket.created`` CloudEvent as decoded JSON; ``overrides`` replace attributes."""
    raw = {
        "specversion": "1.0",
        "id": event_id or f"evt-{ticket}",
        "source": "ivr-1",
        "type": "ivr.ticket.created",
        "time": "2026-11-17T15:00:00+00:00",
        "subject": f"call-{ticket}",
        "datacontenttype": "application/json",
        "dataschema": schema_uri("ivr.ticket.created"),
        "sequence": "00003",
        "data": {
            "ticket": ticket,
            "method": "support_code",
            "caller_kind": "consumer",
            "purpose": "technical",
            "severity": "B",
            "customer": "C-1",
            "contract": contract,
            "rule": "R4",
            "deduct": deduct,
        },
    }
    raw.update(overrides)
    return raw


def encode(raw) -> bytes:
    """The payload bytes as they arrive off the wire."""
    return json.dumps(raw).encode()


def without(key):
    """A good event missing one top-level attribute."""
    raw = ticket_created("2000009")
    del raw[key]
    return encode(raw)


def without_data(key):
    """A good event missing one ``data`` field."""
    raw = ticket_created("2000009")
    del raw["data"][key]
    return encode(raw)


@pytest.fixture
async def service(tmp_path):
    """A ledger service over a real SQLite store with K-FIVE (5 incidents) and K-ONE (1)."""
    store = await SqliteLedgerStore.open(tmp_path / "ledger.db")
    await store.load_opening({"K-FIVE": 5, "K-ONE": 1})
    yield LedgerService(store=store, source="ledger-1")
    await store.close()


MALFORMED = [
    pytest.param(b"{not json", "not JSON", id="not-json"),
    pytest.param(b"", "not JSON", id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", "not JSON", id="not-utf8"),
    pytest.param(b"[1, 2, 3]", "JSON object", id="json-list"),
    pytest.param(b"42", "JSON object", id="json-number"),
    pytest.param(b"null", "JSON object", id="json-null"),
    pytest.param(without("specversion"), "specversion", id="missing-specversion"),
    pytest.param(without("id"), "'id'", id="missing-id"),
    pytest.param(without("source"), "'source'", id="missing-source"),
    pytest.param(without("type"), "type", id="missing-type"),
    pytest.param(without("subject"), "'subject'", id="missing-subject"),
    pytest.param(without("data"), "'data'", id="missing-data"),
    pytest.param(encode(ticket_created("2000009", specversion="0.3")), "specversion", id="wrong-specversion"),
    pytest.param(encode(ticket_created("2000009", specversion=1.0)), "specversion", id="specversion-number"),
    pytest.param(encode(ticket_created("2000009", type="ivr.call.started")), "ivr.call.started", id="wrong-type"),
    pytest.param(encode(ticket_created("2000009", data="ticket 2000009")), "data", id="data-not-object"),
    pytest.param(without_data("ticket"), "'ticket'", id="missing-ticket"),
    pytest.param(without_data("contract"), "'contract'", id="missing-contract"),
    pytest.param(without_data("deduct"), "'deduct'", id="missing-deduct"),
    pytest.param(encode(ticket_created(2000009)), "data.ticket", id="ticket-not-string"),
    pytest.param(encode(ticket_created("2000009", contract=["K-FIVE"])), "data.contract", id="contract-not-string"),
    pytest.param(encode(ticket_created("2000009", deduct="yes")), "data.deduct", id="deduct-not-bool"),
    pytest.param(encode(ticket_created("2000009", deduct=1)), "data.deduct", id="deduct-is-int"),
    # Forged or absurd: every field is bounded.
    pytest.param(
        encode(ticket_created("2" * 5000, event_id="evt-long", subject="call-long")), "data.ticket", id="ticket-5000"
    ),
    pytest.param(encode(ticket_created("2000009", contract="K" * 60_000)), "data.contract", id="contract-60-kb"),
    pytest.param(encode(ticket_created("20000x9")), "data.ticket", id="ticket-not-digits"),
    pytest.param(encode(ticket_created("2000009", contract="K-FIVE\nK-ONE")), "data.contract", id="contract-newline"),
    pytest.param(encode(ticket_created("2000009", event_id="e" * 65)), "id", id="id-65-chars"),
    pytest.param(encode(ticket_created("2000009", source="ivr 1")), "source", id="source-with-space"),
    pytest.param(encode(ticket_created("2000009", sequence=10**30)), "sequence", id="sequence-10e30"),
    pytest.param(encode(ticket_created("2000009", trace="x" * 2000)), "trace", id="extension-2000-chars"),
    pytest.param(
        encode(ticket_created("2000009", **{f"ext{n}": "x" for n in range(30)})), "properties", id="40-attributes"
    ),
]


@pytest.mark.parametrize(("payload", "reason_part"), MALFORMED)
async def test_a_malformed_payload_is_a_dead_letter_and_the_good_ones_still_apply(service, payload, reason_part):
    """A bad message in the middle of a batch is dead-lettered with its reason; the others are applied."""
    good = [encode(ticket_created("2000001")), encode(ticket_created("2000002", contract="K-ONE"))]
    handled = await service.handle([good[0], payload, good[1]])
    assert [d.payload for d in handled.dead] == [payload]
    assert reason_part in handled.dead[0].reason
    assert [(v.outcome, v.request.ticket_id) for v in handled.verdicts] == [
        (Outcome.DEDUCTED, "2000001"),
        (Outcome.DEDUCTED, "2000002"),
    ]
    assert await service.store.deducted() == {"K-FIVE": 1, "K-ONE": 1}


async def test_every_malformed_payload_at_once(service):
    """A batch of nothing but bad messages deducts nothing and dead-letters each one, in order."""
    payloads = [p.values[0] for p in MALFORMED]
    handled = await service.handle(payloads)
    assert [d.payload for d in handled.dead] == payloads
    assert all(d.reason for d in handled.dead)
    assert handled.verdicts == []
    assert await service.store.deducted() == {}


async def test_an_event_asking_no_deduction_is_counted_as_ignored(service):
    """A well-formed ``ticket.created`` with ``deduct: false`` (unlimited contract) is neither applied nor dead."""
    handled = await service.handle([encode(ticket_created("2000001", deduct=False))])
    assert (handled.verdicts, handled.dead, handled.ignored) == ([], [], 1)
    assert await service.store.history("K-FIVE") == []


async def test_extra_attributes_are_accepted(service):
    """Unknown CloudEvents extensions and data fields do not make an event malformed."""
    raw = ticket_created("2000001", traceparent="00-abc-def-01")
    raw["data"]["note"] = "extra"
    handled = await service.handle([encode(raw)])
    assert handled.dead == []
    assert len(handled.verdicts) == 1


async def test_a_redelivered_batch_is_applied_once(service):
    """The same batch handled twice (the broker redelivers after a crash) deducts once and says nothing new."""
    batch = [encode(ticket_created("2000001")), encode(ticket_created("2000002"))]
    first = await service.handle(batch)
    again = await service.handle(batch)
    assert len(first.verdicts) == 2
    assert again.verdicts == []
    assert again.dead == []
    assert await service.store.deducted() == {"K-FIVE": 2}


async def test_the_last_incident_in_one_batch_goes_to_the_first_request(service):
    """Two tickets for K-ONE's last incident in one batch: the first is deducted, the second rejected."""
    handled = await service.handle([encode(ticket_created(t, contract="K-ONE")) for t in ("2000001", "2000002")])
    assert [(v.outcome, v.reason) for v in handled.verdicts] == [
        (Outcome.DEDUCTED, None),
        (Outcome.REJECTED, "no_incidents_left"),
    ]
    announced = [json.loads(payload) for _, _, payload in await service.store.unsent()]
    assert [(e["type"], e["source"], e["data"].get("reason")) for e in announced] == [
        (EventType.LEDGER_INCIDENT_DEDUCTED, "ledger-1", None),
        (EventType.LEDGER_DEDUCTION_REJECTED, "ledger-1", "no_incidents_left"),
    ]
    assert (await service.store.balances())["K-ONE"] == (1, 0)


async def test_an_empty_batch_is_handled(service):
    """Nothing in, nothing out."""
    handled = await service.handle([])
    assert (handled.verdicts, handled.dead, handled.ignored) == ([], [], 0)


async def test_a_valid_event_of_another_type_is_a_dead_letter(service):
    """A well-formed event that is not ``ticket.created`` (the ledger's own answer) is dead-lettered."""
    await service.handle([encode(ticket_created("2000001"))])
    [(_, _, answer)] = await service.store.unsent()
    handled = await service.handle([answer.encode(), encode(ticket_created("2000002"))])
    assert len(handled.dead) == 1
    assert "ivr.ticket.created" in handled.dead[0].reason
    assert [v.request.ticket_id for v in handled.verdicts] == ["2000002"]
    assert await service.store.deducted() == {"K-FIVE": 2}


async def test_the_same_event_id_with_other_content_is_a_conflict_dead_letter(service):
    """A forged copy of an applied event (same source and id, another contract) is dead-lettered; the first stands."""
    first = encode(ticket_created("2000001"))
    forged = encode(ticket_created("2000002", contract="K-ONE", event_id="evt-2000001"))
    assert len((await service.handle([first])).verdicts) == 1
    handled = await service.handle([forged, first])  # the forgery, then a plain redelivery
    assert handled.verdicts == []
    [dead] = handled.dead
    assert dead.payload == forged
    assert dead.reason.startswith("conflict: event 'evt-2000001' from 'ivr-1' was applied before with other content")
    assert await service.store.deducted() == {"K-FIVE": 1}
    assert [(e.ticket_id, e.contract_id) for e in await service.store.entries()] == [("2000001", "K-FIVE")]


async def test_a_conflict_within_one_batch_keeps_the_first(service):
    """Two versions of one event in the same batch: the first is applied, the second dead-lettered as a conflict."""
    first = encode(ticket_created("2000001"))
    other = encode(ticket_created("2000001", event_id="evt-2000001", time="2026-11-17T15:00:01+00:00"))
    handled = await service.handle([first, other])
    assert [v.request.ticket_id for v in handled.verdicts] == ["2000001"]
    assert [(d.payload, d.reason.split(":")[0]) for d in handled.dead] == [(other, "conflict")]
