"""What the ledger decides for one ``ticket.created`` event, as pure functions.

The ledger deducts once per ticket created under a limited contract and never takes a balance
below zero (R7). Deciding is separated from storing so that the rule is tested without SQLite,
and so the batch writer can decide a whole batch in memory and commit it in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from ivr.events import CloudEvent, EventType
from ivr.ids import stable_id

__all__ = [
    "DeductionRequest",
    "MalformedEventError",
    "Outcome",
    "Verdict",
    "decide",
    "event_type",
    "ledger_event",
    "ledger_event_id",
    "request_from",
]

_LEDGER_NS: Final = uuid.UUID("6f1d9a52-58a4-4b7e-9a43-6a3f3b0e7c11")


class MalformedEventError(ValueError):
    """An incoming message the ledger cannot use; its text is the dead-letter reason."""


class Outcome(StrEnum):
    """What became of one deduction request."""

    DEDUCTED = "deducted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeductionRequest:
    """A ``ticket.created`` event that asks for one incident to be deducted."""

    source: str
    event_id: str
    call_id: str
    contract_id: str
    ticket_id: str
    #: A digest of the event as it arrived: a repeat of the same key with another is a conflict.
    digest: bytes = b""

    @property
    def key(self) -> str:
        """The idempotency key: a redelivered event has the same source and id."""
        return f"{self.source} {self.event_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The ledger's answer to one request, and the balance it leaves."""

    request: DeductionRequest
    outcome: Outcome
    balance_after: int | None
    reason: str | None = None


def request_from(event: dict[str, Any], *, digest: bytes = b"") -> DeductionRequest | None:
    """The deduction a schema-valid event asks for; ``None`` for an event that asks for none.

    ``digest`` fingerprints the event's bytes, so that another event under the same key is told
    from a redelivery (:class:`~ivr.ledger.store.Applied`).

    The envelope and the fields were checked against the event contract already
    (:func:`ivr.bus.schemas.parse`); what is left for the ledger is whether it takes this type.
    Raises :class:`MalformedEventError` for any type but ``ivr.ticket.created``.
    """
    if event["type"] != EventType.TICKET_CREATED:
        msg = f"the ledger takes {EventType.TICKET_CREATED}, not {event['type']!r}"
        raise MalformedEventError(msg)
    data = event["data"]
    if not data["deduct"]:
        return None
    return DeductionRequest(
        source=str(event["source"]),
        event_id=str(event["id"]),
        call_id=str(event["subject"]),
        contract_id=data["contract"],
        ticket_id=data["ticket"],
        digest=digest,
    )


def decide(request: DeductionRequest, balance: int | None, *, known: bool) -> Verdict:
    """Deduct one incident if one is left; otherwise reject, leaving the balance as it is."""
    if not known:
        return Verdict(request=request, outcome=Outcome.REJECTED, balance_after=None, reason="unknown_contract")
    if balance is None:
        return Verdict(request=request, outcome=Outcome.REJECTED, balance_after=None, reason="unlimited_contract")
    if balance <= 0:
        return Verdict(request=request, outcome=Outcome.REJECTED, balance_after=0, reason="no_incidents_left")
    return Verdict(request=request, outcome=Outcome.DEDUCTED, balance_after=balance - 1)


def ledger_event_id(request: DeductionRequest) -> str:
    """The id of the event announcing ``request``'s verdict: derived from its key, so a re-send is the same event."""
    return stable_id(_LEDGER_NS, request.key)


def event_type(outcome: Outcome) -> EventType:
    """The type of the event announcing a verdict of this outcome."""
    return EventType.LEDGER_INCIDENT_DEDUCTED if outcome is Outcome.DEDUCTED else EventType.LEDGER_DEDUCTION_REJECTED


def ledger_event(verdict: Verdict, *, source: str, time: str) -> CloudEvent:
    """The event announcing a verdict: ``source`` names the ledger, ``time`` when it applied it.

    Everything in it comes from the verdict, its request and those two, which is why the store
    keeps only them and builds the event when it is announced (:mod:`ivr.ledger.store`).
    """
    request = verdict.request
    deducted = verdict.outcome is Outcome.DEDUCTED
    data: dict[str, Any] = {
        "contract": request.contract_id,
        "ticket": request.ticket_id,
        "trigger_event_id": request.event_id,
        "trigger_source": request.source,
        "balance_after": verdict.balance_after,
    }
    if not deducted:
        data["reason"] = verdict.reason
    return CloudEvent(
        id=ledger_event_id(request),
        type=event_type(verdict.outcome),
        source=source,
        subject=request.call_id,
        time=time,
        sequence=1,
        data=data,
    )
