"""The event contract: the schemas accept real events and reject malformed ones with a reason.

What the engine and the ledger really emit passes; a malformed event is refused with an error
naming the field; the AsyncAPI document and the integrators' page agree with the schemas.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ivr.bus import schemas
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.mqtt import MqttBus
from ivr.bus.schemas import InvalidEventError, validate
from ivr.bus.url import BrokerConfig
from ivr.events import (
    CONTRACT_VERSION,
    PARTITIONS,
    CloudEvent,
    EventType,
    format_sequence,
    partition_of,
    schema_uri,
    topic_for,
)
from ivr.ledger.core import DeductionRequest
from ivr.ledger.store import SqliteLedgerStore

REPO = Path(__file__).resolve().parents[2]
SATURDAY_10AM = datetime(2026, 11, 21, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
CONSUMER = "+15550100001"
BUSINESS = "+15550200001"

#: Scripts covering every IVR event type: sales, grants by code, key and ticket, denials,
#: a lockout, out of hours, a hang-up.
CALLS = [
    (["1"], CONSUMER, None),
    (["2", "1", "2", "1234500001#", "2"], CONSUMER, None),
    (["2", "2", "3", "40000001#", "1"], BUSINESS, None),
    (["2", "1", "1", "1000001#"], CONSUMER, None),
    (["2", "1", "2", "1234509999#", "2", "1234509999#", "2", "1234509999#"], "+15550100009", None),
    (["2", "1", "2", "1234509999#", "2", "1234509999#", "2"], "+15550100009", None),
    (["2", "1", "2", "1234500001#"], CONSUMER, SATURDAY_10AM),
    (["2", "hangup"], CONSUMER, None),
]


def good(event_type: str = EventType.CALL_STARTED, **data):
    """A valid event of ``event_type`` (call.started data unless ``data`` is given)."""
    now = datetime(2026, 11, 17, 15, 0, tzinfo=UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "ivr-1",
        "type": str(event_type),
        "time": now,
        "subject": "call-1",
        "datacontenttype": "application/json",
        "dataschema": schema_uri(event_type),
        "sequence": "00001",
        "data": data or {"caller": CONSUMER, "started_at": now},
    }


def documented_topic(event_type: str) -> str:
    """The topic the documents give a type: the ticket's with its partition level as a parameter."""
    topic = topic_for(event_type)
    return f"{topic}/{{partition}}" if event_type == EventType.TICKET_CREATED else topic


def test_every_event_type_has_a_schema():
    """One schema per EventType, and no schema for a type the code does not know."""
    assert schemas.event_types() == {str(t) for t in EventType}


def test_schemas_share_one_envelope():
    """All schemas describe the same CloudEvents envelope; only ``type`` and ``data`` differ."""
    envelopes = []
    for event_type in schemas.event_types():
        schema = schemas.schema_for(event_type)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["type"] == {"description": "The event type.", "type": "string", "const": event_type}
        assert documented_topic(event_type).replace("{partition}", "<partition>") in schema["description"]
        envelope = {k: v for k, v in schema["properties"].items() if k not in {"type", "data"}}
        envelopes.append((envelope, schema["required"], schema["propertyNames"]))
    assert all(e == envelopes[0] for e in envelopes)


async def test_engine_events_are_valid(run_call):
    """Every event the engine emits, for calls covering all eight IVR types, passes its schema."""
    seen = set()
    for script, number, at in CALLS:
        record = await (run_call(script, number=number, at=at) if at else run_call(script, number=number))
        for event in record.events:
            validate(json.loads(event.to_json()))  # as a consumer decodes it
            seen.add(event.type)
    assert seen == {str(t) for t in EventType if not t.startswith("ivr.ledger.")}


async def test_ledger_events_are_valid(tmp_path):
    """The ledger's deducted and rejected events (last incident raced, unknown, unlimited) pass."""
    store = await SqliteLedgerStore.open(tmp_path / "ledger.db")
    try:
        await store.load_opening({"K-ONE": 1, "K-UNLIMITED": None})
        requests = [
            DeductionRequest(
                source="ivr-1", event_id=f"e-{n}", call_id=f"c-{n}", contract_id=contract, ticket_id=f"200000{n}"
            )
            for n, contract in enumerate(["K-ONE", "K-ONE", "K-NOWHERE", "K-UNLIMITED"])
        ]
        await store.apply(requests, source="ivr-1-ledger", now=datetime.now(UTC).isoformat())
        events = [json.loads(payload) for _, _, payload in await store.unsent()]  # as the announcer reads them
    finally:
        await store.close()
    for event in events:
        validate(event)
    assert {e["type"] for e in events} == {EventType.LEDGER_INCIDENT_DEDUCTED, EventType.LEDGER_DEDUCTION_REJECTED}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda e: e.pop("id"), "'id' is a required property"),
        (lambda e: e.update(specversion="0.3"), "specversion: '1.0' was expected"),
        (lambda e: e.update(sequence="00000"), "sequence: '00000' should not be valid under"),
        (lambda e: e.update(sequence=1), "sequence: 1 is not of type 'string'"),
        (lambda e: e.update(sequence="1"), "sequence: '1' is too short"),
        (lambda e: e.update(sequence="000-1"), "sequence: '000-1' does not match"),
        (lambda e: e.update(sequence="10001"), "sequence: '10001' does not match"),
        (lambda e: e.pop("dataschema"), "'dataschema' is a required property"),
        (lambda e: e.update(dataschema="schemas/x.json"), "dataschema: 'schemas/x.json' does not match"),
        (lambda e: e.update(time="17/11/2026 15:00"), "time: '17/11/2026 15:00' is not a 'date-time'"),
        (lambda e: e.update(time="2026-11-17T15:00:00"), "is not a 'date-time'"),
        # RFC 3339 syntax, yet no instant Python can read: the fast validator must refuse them too.
        (lambda e: e.update(time="2026-02-30T15:00:00Z"), "is not a 'date-time'"),
        (lambda e: e.update(time="2026-06-30T23:59:60Z"), "is not a 'date-time'"),
        (lambda e: e.update(time="0000-01-01T00:00:00Z"), "is not a 'date-time'"),
        (lambda e: e.update(type="ivr.call.exploded"), "unknown event type 'ivr.call.exploded'"),
        (lambda e: e["data"].pop("caller"), "data: 'caller' is required"),
        (lambda e: e.update(Extra="x"), "'Extra' does not match"),
    ],
)
def test_malformed_envelopes_are_rejected_with_the_reason(change, says):
    """A broken envelope is refused, and the error names the field and what is wrong with it."""
    event = good()
    change(event)
    with pytest.raises(InvalidEventError, match=re.escape(says).replace("is\\ required", "is a required property")):
        validate(event)


def test_bad_data_fields_are_rejected():
    """Wrong enum values, missing fields and unmasked secrets in ``data`` are refused."""
    granted = good(
        EventType.AUTH_GRANTED,
        method="support_code",
        caller_kind="consumer",
        purpose="technical",
        rule="R4",
        customer="C-ANNA",
        contract="K-ANNA-STD",
        ticket=None,
        deduct=True,
        detail="support code ********01 is on active contract K-ANNA-STD with phone support",
    )
    validate(granted)
    cases = {
        "rule": ("R12", "data.rule: 'R12' is not one of"),
        "method": ("pin", "data.method: 'pin' is not one of"),
        "deduct": ("yes", "data.deduct: 'yes' is not of type 'boolean'"),
        "detail": ("support code 1234500001 is on contract K-ANNA-STD", "data.detail: holds an unmasked support code"),
        "customer": (12345678, "data.customer: ******78 is not of type 'string'"),
    }
    for field, (value, says) in cases.items():
        broken = json.loads(json.dumps(granted))
        broken["data"][field] = value
        with pytest.raises(InvalidEventError, match=re.escape(says)) as caught:
            validate(broken)
        assert "1234500001" not in str(caught.value), "the error repeats the secret"


def test_a_caller_number_is_not_taken_for_a_secret():
    """A ``+``-prefixed phone number in a detail is not a code: it passes the masking check."""
    denied = good(
        EventType.AUTH_DENIED,
        method="ticket",
        caller_kind="consumer",
        purpose="technical",
        rule="R2",
        reason="unknown_ticket",
        attempt=1,
        detail="no ticket 1234567 for +15550100001",
    )
    validate(denied)


def _unbounded(node: dict, path: str = "$"):
    """Paths in a schema where a value of any length, size or count is accepted."""
    if "enum" in node or "const" in node:
        return
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    limits = {"string": "maxLength", "integer": "maximum", "number": "maximum", "array": "maxItems"}
    limits["object"] = "maxProperties"
    yield from (f"{path} ({kind})" for kind in kinds if kind in limits and limits[kind] not in node)
    for name, child in node.get("properties", {}).items():
        yield from _unbounded(child, f"{path}.{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(node.get(key), dict):
            yield from _unbounded(node[key] | {"type": node[key].get("type", "string")}, f"{path}[{key}]")


@pytest.mark.parametrize("event_type", sorted(schemas.event_types()))
def test_every_field_is_bounded(event_type):
    """No string, number, list or object of any schema is unbounded: a forged event cannot be absurd."""
    assert list(_unbounded(schemas.schema_for(event_type))) == []


def test_a_huge_refused_value_is_not_repeated_whole_in_the_reason():
    """The reason (which goes to the dead-letter topic and logs) quotes a 60 KB value in part only."""
    granted = good(EventType.CALL_STARTED, caller="+15550100001", started_at="2026-11-17T15:00:00+00:00")
    granted["subject"] = "c" * 60_000
    with pytest.raises(InvalidEventError, match="subject: 'ccc") as caught:
        validate(granted)
    assert len(str(caught.value)) < 400
    assert str(caught.value).endswith("is too long")


def test_parse_rejects_what_is_not_json():
    """parse() turns undecodable bytes into the same error type, for the dead-letter path."""
    with pytest.raises(InvalidEventError, match="not JSON"):
        schemas.parse(b"\xff\xfe not json")
    assert schemas.parse(json.dumps(good()).encode())["type"] == "ivr.call.started"


def test_sequence_sorts_lexically_in_sequence_order():
    """``sequence`` is the CloudEvents sequence extension's string: sorted as text, it is in number order."""
    numbers = [1, 2, 9, 10, 11, 99, 100, 9_999, 10_000]
    texts = [format_sequence(n) for n in numbers]
    assert sorted(texts) == texts
    assert (texts[0], texts[-1]) == ("00001", "10000")
    event = CloudEvent(type=EventType.CALL_STARTED, source="ivr-1", subject="c", time="t", sequence=10, data={})
    assert event.to_dict()["sequence"] == "00010"
    assert CloudEvent.from_dict(event.to_dict()).sequence == 10


def test_a_contract_has_one_partition_whatever_the_process():
    """The partition is CRC-32 of the contract id modulo 16, pinned here: no ``hash()``, which differs per run."""
    assert PARTITIONS == 16
    assert {c: partition_of(c) for c in ("K-ANNA-STD", "K-BOLT-PREM", "K-1", "x")} == {
        "K-ANNA-STD": 4,  # crc32(b"K-ANNA-STD") = 3295206836
        "K-BOLT-PREM": 15,
        "K-1": 6,
        "x": 3,
    }
    ticket = CloudEvent(
        type=EventType.TICKET_CREATED, source="ivr-1", subject="c", time="t", sequence=1, data={"contract": "K-1"}
    )
    assert ticket.topic == "ivr/v2/ticket/created/6"


def test_dataschema_names_the_schema_under_the_deployments_base(schema_base):
    """Every event names its schema: the packaged file's name under the process's base, versioned."""
    assert (
        schema_uri("ivr.call.started")
        == f"http://127.0.0.1:8080/schemas/{CONTRACT_VERSION}/ivr.call.started.schema.json"
    )
    schema_base("https://events.example.com/ivr/schemas/")
    event = CloudEvent(type=EventType.CALL_ENDED, source="ivr-1", subject="c", time="t", sequence=3, data={})
    assert event.to_dict()["dataschema"] == "https://events.example.com/ivr/schemas/v2/ivr.call.ended.schema.json"
    kept = CloudEvent.from_dict(event.to_dict() | {"dataschema": "https://elsewhere.example/s.json"})
    assert kept.to_dict()["dataschema"] == "https://elsewhere.example/s.json"
    for bad in ("schemas/", "ftp://x/schemas/", "http:///schemas/", "http://host/a b/"):
        with pytest.raises(ValueError, match="IVR_SCHEMA_BASE is the base URL"):
            schema_base(bad)


def test_not_an_object_is_rejected():
    """A JSON value that is not an object is refused before any schema is looked up."""
    with pytest.raises(InvalidEventError, match="JSON object, not list"):
        validate([good()])


# -- the documents agree with the schemas ---------------------------------------------------


def test_asyncapi_has_a_channel_and_message_per_type():
    """docs/asyncapi.yaml: AsyncAPI 3.1.0, one channel per type at its topic, payloads referencing the schema files."""
    doc = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.1.0"
    addresses = {c["address"]: name for name, c in doc["channels"].items()}
    for event_type in schemas.event_types():
        channel = doc["channels"][addresses[documented_topic(event_type)]]
        [ref] = [m["$ref"] for m in channel["messages"].values()]
        message = doc["components"]["messages"][ref.rsplit("/", 1)[1]]
        assert message["name"] == event_type
        schema_file = (REPO / "docs" / message["payload"]["schema"]["$ref"]).resolve()
        assert json.loads(schema_file.read_text())["properties"]["type"]["const"] == event_type
    for name, operation in doc["operations"].items():
        assert operation["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"], name
        for ref in operation["messages"]:
            _, _, channel, _, message = ref["$ref"].split("/")
            assert message in doc["channels"][channel]["messages"], name
    received = {
        op["channel"]["$ref"].removeprefix("#/channels/")
        for op in doc["operations"].values()
        if op["action"] == "receive" and {"name": "integrators"} in op["tags"]
    }
    assert received == set(doc["channels"]), "an integrator's receive operation is missing"
    partition = doc["channels"]["ticketCreated"]["parameters"]["partition"]
    assert partition["enum"] == [str(p) for p in range(PARTITIONS)]


def test_events_page_lists_every_type_with_its_topic():
    """docs/events.md names every type next to its topic."""
    text = (REPO / "docs" / "events.md").read_text()
    for event_type in schemas.event_types():
        assert f"| `{event_type}` | `{documented_topic(event_type)}` |" in text


def _example_code() -> str:
    """The Python block of docs/events.md's subscriber example."""
    text = (REPO / "docs" / "events.md").read_text()
    section = text.split("## A subscriber in Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_subscriber_example_is_valid_python():
    """The integrators' example parses, and is the code the next test runs."""
    tree = ast.parse(_example_code())
    names = {n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)}
    assert names == {"handle", "dead_letter", "main"}


def _login(config: BrokerConfig, user: str) -> BrokerConfig:
    """``config`` with one of the dev-only accounts of deploy/mosquitto (password ``<user>-dev-only``)."""
    return BrokerConfig(host=config.host, port=config.port, username=user, password=f"{user}-dev-only")


class _Calls:
    """What the example handed its ``handle`` and ``dead_letter``, recorded as it goes."""

    def __init__(self, namespace: dict) -> None:
        """Wrap the example's two functions; main() looks them up in its namespace when called."""
        self.handled: list[dict] = []
        self.letters: list[dict] = []
        self._changed = asyncio.Event()
        namespace["handle"] = self._recording(self.handled, namespace["handle"])
        namespace["dead_letter"] = self._recording(self.letters, namespace["dead_letter"])

    def _recording(self, into: list[dict], original):
        def wrapper(body):
            original(body)
            into.append(body)
            self._changed.set()

        return wrapper

    async def until(self, running: asyncio.Task, done) -> None:
        """Wait until ``done()``, failing if the example stops first."""
        while not done():
            self._changed.clear()
            waiting = asyncio.create_task(self._changed.wait())
            await asyncio.wait((running, waiting), return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert not running.done(), f"the example stopped: {running.exception()!r}"


@pytest.mark.broker
async def test_subscriber_example_works_as_written(needs_mosquitto, tmp_path, capsys):
    """The example, on the deployed config, handles events, a dead letter, statuses (nested too) and garbage."""
    namespace: dict = {"__name__": "example"}
    exec(compile(_example_code(), "docs/events.md", "exec"), namespace)  # noqa: S102 - our own document
    calls = _Calls(namespace)
    conf = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
    letter = {"reason": "not JSON", "topic": "ivr/v2/ticket/created", "payload": "oops"}
    async with EmbeddedBroker(base_config=conf, persistence_dir=tmp_path / "data") as broker:
        config = broker.config
        ivr = MqttBus(config=_login(config, "ivr"), client_id="ivr-console")
        ledger = MqttBus(config=_login(config, "ledger"), client_id="ivr-ledger")
        async with ivr, ledger, asyncio.timeout(20):
            await ivr.wait_connected()
            await ledger.wait_connected()
            # Retained, so the example gets them whenever its subscription lands (events never are).
            await ledger.publish("ivr/v2/deadletter", json.dumps(letter), retain=True)
            await ivr.publish("ivr/v2/call/started", json.dumps(good()), retain=True)
            seen = set()
            args = (config.host, config.port, "integrator", "integrator-dev-only", "integrator", seen)
            running = asyncio.create_task(namespace["main"](*args))
            try:
                await calls.until(running, lambda: calls.handled and calls.letters)
                # Live now, in order on one connection: handling the last means the others came first.
                await ivr.publish("ivr/v2/call/ended", b"\xff not an event")
                await ivr.publish("ivr/v2/status/ivr-console", "online")
                await ivr.publish("ivr/v2/status/ivr-console/world-1", "online")  # a world's, nested
                await ivr.publish("ivr/v2/status/ivr-console/world-1", b"")  # cleared as the world ends
                await ivr.publish("ivr/v2/call/started", json.dumps(good() | {"id": "e-2"}))
                await calls.until(running, lambda: len(calls.handled) == 2)
            finally:
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
    assert seen == {("ivr-1", "e-1"), ("ivr-1", "e-2")}
    assert [each["reason"] for each in calls.letters] == ["not JSON"]
    out = capsys.readouterr().out
    assert "ivr.call.started call-1 00001" in out
    assert "dead letter from ivr/v2/ticket/created : not JSON" in out
    assert "status ivr/v2/status/ivr-console online" in out
    assert "status ivr/v2/status/ivr-console/world-1 online" in out
    assert "unreadable message on ivr/v2/status" not in out
    assert "unreadable message on ivr/v2/call/ended" in out
