"""The ledger's work on a batch of incoming messages, whatever carried them.

Transport-free: the MQTT consumer (`ivr ledger`) and the in-process link used by unit tests both
hand raw payloads to :meth:`LedgerService.handle` and act on its answer: dead-letter the malformed,
then acknowledge the batch; the ledger events announcing the verdicts are read from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ivr.bus.schemas import InvalidEventError, parse, prepare
from ivr.events import EventType
from ivr.ledger.core import DeductionRequest, MalformedEventError, request_from

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ivr.ledger.core import Verdict
    from ivr.ledger.store import LedgerStore

__all__ = ["DeadLetter", "Handled", "LedgerService"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the ledger could not use, with the reason."""

    payload: bytes
    reason: str
    #: The size of a payload over the bus's limit, discarded unread (``payload`` is then empty).
    oversize: int | None = None


@dataclass(slots=True)
class Handled:
    """What one batch produced."""

    verdicts: list[Verdict] = field(default_factory=list)  # of the requests new to the ledger, in order
    dead: list[DeadLetter] = field(default_factory=list)
    ignored: int = 0  # well-formed events that ask for no deduction, or not from our IVR


class LedgerService:
    """Turns ``ticket.created`` payloads into deductions, exactly once each."""

    def __init__(self, *, store: LedgerStore, source: str, only_from: str | None = None) -> None:
        """``source`` names this ledger instance in the events it emits.

        ``only_from`` keeps a private ledger (a replayed scenario's) to one IVR's events on a
        shared broker; `ivr ledger` takes every IVR's.
        """
        self.store = store
        self.source = source
        self.only_from = only_from
        prepare(EventType.TICKET_CREATED)

    async def handle(self, payloads: Iterable[bytes]) -> Handled:
        """Validate against the event contract, then apply a batch in one transaction."""
        handled = Handled()
        requests: list[DeductionRequest] = []
        for payload in payloads:
            try:
                request = request_from(parse(payload))
            except (InvalidEventError, MalformedEventError) as exc:
                handled.dead.append(DeadLetter(payload, str(exc)))
                continue
            if request is None or (self.only_from is not None and request.source != self.only_from):
                handled.ignored += 1
            else:
                requests.append(request)
        now = datetime.now(UTC).isoformat()
        handled.verdicts = await self.store.apply(requests, source=self.source, now=now)
        return handled
