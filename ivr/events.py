"""The event contract: CloudEvents 1.0 envelopes for every decision a call makes.

Integrators build billing and CRM links on these, so the types, the topic mapping, the ticket
partitions, ``dataschema`` and the ``sequence`` extension are a public API, versioned by the topic
root (`docs/events.md`). An event is built once, here, and travels as it is: into the outbox, over
MQTT, into the ledger.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from ivr.ids import random_id

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_SCHEMA_BASE",
    "PARTITIONS",
    "SCHEMA_BASE_ENV",
    "SEQUENCE_WIDTH",
    "SPECVERSION",
    "TOPIC_ROOT",
    "CloudEvent",
    "EventType",
    "format_sequence",
    "is_ticket_topic",
    "partition_of",
    "schema_uri",
    "ticket_topic",
    "ticket_topics",
    "topic_for",
    "use_schema_base",
]

SPECVERSION: Final = "1.0"
#: The contract's major version: the topic root and the schemas' URIs carry it. Only additions
#: stay within a version; anything an integrator must change for makes the next one.
CONTRACT_VERSION: Final = "v2"
TOPIC_ROOT: Final = f"ivr/{CONTRACT_VERSION}"
#: Ticket events go out on one of this many partition topics, chosen by contract. A contract
#: constant, not a setting: every IVR, every ledger and any integrator who routes by partition
#: must agree on it, and a mismatch would strand a partition with no ledger, silently.
PARTITIONS: Final = 16
#: ``sequence`` is a string of this many digits, so that its lexical order is its numeric order:
#: enough for the contract's bound of 10,000 events a call, and short of the 8-digit runs that
#: secrets are masked by (a reason quoting a sequence keeps it).
SEQUENCE_WIDTH: Final = 5
#: Where the schemas are served (`ivr serve` at ``/schemas/``), per deployment: the environment
#: variable `ivr` reads it from, and where `ivr serve` answers with its default options.
SCHEMA_BASE_ENV: Final = "IVR_SCHEMA_BASE"
DEFAULT_SCHEMA_BASE: Final = "http://127.0.0.1:8080/schemas/"


class EventType(StrEnum):
    """Every event type the IVR and the ledger emit."""

    CALL_STARTED = "ivr.call.started"
    AUTH_GRANTED = "ivr.auth.granted"
    AUTH_DENIED = "ivr.auth.denied"
    AUTH_LOCKED_OUT = "ivr.auth.locked_out"
    TICKET_CREATED = "ivr.ticket.created"
    CALL_ROUTED = "ivr.call.routed"
    CALL_FALLBACK = "ivr.call.fallback"
    CALL_ENDED = "ivr.call.ended"
    LEDGER_INCIDENT_DEDUCTED = "ivr.ledger.incident_deducted"
    LEDGER_DEDUCTION_REJECTED = "ivr.ledger.deduction_rejected"


def topic_for(event_type: str, *, root: str = TOPIC_ROOT) -> str:
    """``ivr.auth.granted`` -> ``ivr/v2/auth/granted``: one topic level per dot after ``ivr.``.

    ``root`` replaces ``ivr/v2`` where tests or replays isolate themselves on a shared broker.
    ``ivr.ticket.created`` is the one type not published here but a level below, on its contract's
    partition (:func:`ticket_topic`).
    """
    prefix, _, rest = event_type.partition(".")
    if prefix != "ivr" or not rest:
        msg = f"not an ivr event type: {event_type!r}"
        raise ValueError(msg)
    return f"{root}/{rest.replace('.', '/')}"


def partition_of(contract: str) -> int:
    """The ticket partition of a contract: CRC-32 (IEEE, as zlib's) of its UTF-8 id, modulo :data:`PARTITIONS`.

    Not ``hash()``, which differs between processes: any process, in any language, must find the
    same partition, so that one contract's tickets keep their order on one topic.
    """
    return zlib.crc32(contract.encode("utf-8")) % PARTITIONS


@cache  # one per partition and root: made for every ticket
def ticket_topic(partition: int, *, root: str = TOPIC_ROOT) -> str:
    """``ivr/v2/ticket/created/<partition>``: a topic level per partition, which every broker routes."""
    if not 0 <= partition < PARTITIONS:
        msg = f"a ticket partition is 0-{PARTITIONS - 1}, not {partition}"
        raise ValueError(msg)
    return f"{topic_for(EventType.TICKET_CREATED, root=root)}/{partition}"


def ticket_topics(partitions: range | list[int] | None = None, *, root: str = TOPIC_ROOT) -> list[str]:
    """The filters of ``partitions``' ticket topics; every partition (one wildcard filter) by default."""
    if partitions is None:
        return [f"{topic_for(EventType.TICKET_CREATED, root=root)}/+"]
    return [ticket_topic(p, root=root) for p in partitions]


def is_ticket_topic(topic: str, *, root: str = TOPIC_ROOT) -> bool:
    """Whether ``topic`` is one of the ticket partitions under ``root``."""
    head, _, partition = topic.rpartition("/")
    return head == topic_for(EventType.TICKET_CREATED, root=root) and partition.isdigit()


def format_sequence(number: int) -> str:
    """The ``sequence`` attribute: CloudEvents' sequence extension is a string that sorts lexically."""
    return f"{number:0{SEQUENCE_WIDTH}d}"


@dataclass(slots=True)
class _SchemaBase:
    url: str = DEFAULT_SCHEMA_BASE


#: The process's schema base, set once by `ivr` from the environment before any command runs.
_SCHEMA_BASE: Final = _SchemaBase()


def use_schema_base(base: str) -> None:
    """Name the schemas under ``base`` in every event this process writes from now on.

    Process-wide, because events are built deep below the composition root (in the engine, and
    in the SQL functions that announce the ledger's entries), and a process speaks one contract.
    """
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(c.isspace() for c in base):
        msg = f"{SCHEMA_BASE_ENV} is the base URL the event schemas are served at (http or https), not {base!r}"
        raise ValueError(msg)
    _SCHEMA_BASE.url = base


def schema_uri(event_type: str) -> str:
    """The ``dataschema`` of ``event_type``: its JSON Schema under this process's base (:func:`use_schema_base`)."""
    return _schema_uri(_SCHEMA_BASE.url, event_type)


@cache  # one per base and type: made for every event
def _schema_uri(base: str, event_type: str) -> str:
    return f"{base.rstrip('/')}/{CONTRACT_VERSION}/{event_type}.schema.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEvent:
    """A CloudEvents 1.0 event in JSON structured mode, with the ``sequence`` extension.

    ``sequence`` counts 1, 2, 3... per ``subject`` (the call id) with no gaps, so a consumer can
    tell a missing event from a late one; it travels as :func:`format_sequence` writes it.
    ``dataschema`` is the schema's URI under this process's base (:func:`schema_uri`) unless given.
    """

    type: str
    source: str
    subject: str
    time: str
    sequence: int
    data: dict[str, Any]
    id: str = field(default_factory=random_id)
    datacontenttype: str = "application/json"
    specversion: str = SPECVERSION
    dataschema: str = ""

    def __post_init__(self) -> None:
        """Name the schema, unless the event came with one (an event read from the bus keeps its own)."""
        if not self.dataschema:
            object.__setattr__(self, "dataschema", schema_uri(self.type))

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object."""
        return {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "subject": self.subject,
            "datacontenttype": self.datacontenttype,
            "dataschema": self.dataschema,
            "sequence": format_sequence(self.sequence),
            "data": self.data,
        }

    def to_json(self) -> str:
        """The event as compact JSON (UTF-8, unescaped), keys in a stable order."""
        return orjson.dumps(self.to_dict()).decode()

    @property
    def topic(self) -> str:
        """The MQTT topic this event is published on: a ticket's under its contract's partition."""
        if self.type == EventType.TICKET_CREATED:
            return ticket_topic(partition_of(self.data["contract"]))
        return topic_for(self.type)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CloudEvent:
        """Rebuild an event from its JSON object (already validated by the caller)."""
        return cls(
            id=raw["id"],
            type=raw["type"],
            source=raw["source"],
            subject=raw["subject"],
            time=raw["time"],
            sequence=int(raw["sequence"]),
            data=raw["data"],
            datacontenttype=raw.get("datacontenttype", "application/json"),
            specversion=raw["specversion"],
            dataschema=raw.get("dataschema", ""),
        )
