"""The event contract: CloudEvents 1.0 envelopes for every decision a call makes.

Integrators build billing and CRM links on these, so the types, the topic mapping and the
``sequence`` extension are a public API (`docs/events.md`). An event is built once, here, and
travels as it is: into the outbox, over MQTT, into the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import orjson

from ivr.ids import random_id

__all__ = [
    "SPECVERSION",
    "TOPIC_ROOT",
    "CloudEvent",
    "EventType",
    "topic_for",
]

SPECVERSION: Final = "1.0"
TOPIC_ROOT: Final = "ivr/v1"


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
    """``ivr.auth.granted`` -> ``ivr/v1/auth/granted``: one topic level per dot after ``ivr.``.

    ``root`` replaces ``ivr/v1`` where tests or replays isolate themselves on a shared broker.
    """
    prefix, _, rest = event_type.partition(".")
    if prefix != "ivr" or not rest:
        msg = f"not an ivr event type: {event_type!r}"
        raise ValueError(msg)
    return f"{root}/{rest.replace('.', '/')}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEvent:
    """A CloudEvents 1.0 event in JSON structured mode, with the ``sequence`` extension.

    ``sequence`` counts 1, 2, 3... per ``subject`` (the call id) with no gaps, so a consumer can
    tell a missing event from a late one.
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
            "sequence": self.sequence,
            "data": self.data,
        }

    def to_json(self) -> str:
        """The event as compact JSON (UTF-8, unescaped), keys in a stable order."""
        return orjson.dumps(self.to_dict()).decode()

    @property
    def topic(self) -> str:
        """The MQTT topic this event is published on."""
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
        )
