"""The contract's schemas are where every event's ``dataschema`` says: served by a running `ivr serve`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from importlib import resources

import pytest

from ivr.events import EventType
from ivr.ledger.core import DeductionRequest
from ivr.ledger.store import SqliteLedgerStore
from tests.web.browser import serving

CODE_CALL = ["2", "1", "2", *"1234500001#", "2"]  # a support code: a ticket, so a deduction


def fetch(url: str) -> tuple[str, bytes]:
    """The content type and body at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a loopback http URL of the test's own
        return answer.headers["Content-Type"], answer.read()


async def test_every_events_dataschema_fetches_its_schema_from_ivr_serve(run_call, tmp_path, schema_base):
    """IVR and ledger events name their schema by a URI that a running `ivr serve` answers with the packaged file."""
    with serving() as (url, _):
        schema_base(f"{url}schemas/")  # as `ivr` sets it from IVR_SCHEMA_BASE
        record = await run_call(CODE_CALL)
        events = [json.loads(event.to_json()) for event in record.events]  # as a consumer decodes them
        store = await SqliteLedgerStore.open(tmp_path / "answers.db")
        try:
            await store.load_opening({"K-ONE": 1})
            requests = [
                DeductionRequest(
                    source="ivr-1", event_id="e-1", call_id="c-1", contract_id="K-ONE", ticket_id="2000001"
                )
            ]
            await store.apply(requests, source="ivr-1-ledger", now=datetime.now(UTC).isoformat())
            events += [json.loads(payload) for _, _, payload in await store.unsent()]
        finally:
            await store.close()
        assert {e["type"] for e in events} >= {
            EventType.CALL_STARTED,
            EventType.TICKET_CREATED,
            EventType.LEDGER_INCIDENT_DEDUCTED,
        }
        for event in events:
            assert event["dataschema"].startswith(url), event["dataschema"]
            content_type, body = fetch(event["dataschema"])
            packaged = (resources.files("ivr") / "schemas" / f"{event['type']}.schema.json").read_bytes()
            assert (content_type, body) == ("application/schema+json", packaged), event["type"]
            assert json.loads(body)["properties"]["type"]["const"] == event["type"]
        with pytest.raises(urllib.error.HTTPError, match="404"):
            fetch(f"{url}schemas/v2/ivr.call.exploded.schema.json")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            fetch(f"{url}schemas/v2/..%2F..%2Fpyproject.toml")
