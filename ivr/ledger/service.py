"""The ledger's work on a batch of incoming messages, whatever carried them.

Transport-free: the MQTT consumer (`ivr ledger`) and the in-process link used by unit tests both
hand raw payloads to :meth:`LedgerService.handle` and act on its answer: dead-letter the malformed
and the conflicting, then acknowledge the batch; the ledger events announcing the verdicts are
read from the store.

A conflict is an event whose source and id were applied before from other bytes: a broker's
redelivery and an outbox's re-send are the same bytes, so another event under a known id is a
forgery or a publisher reusing ids. Its first version stands; this one is dead-lettered, never
dropped in silence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ivr.bus.schemas import InvalidEventError, parse, prepare
from ivr.events import EventType
from ivr.ledger.core import DeductionRequest, MalformedEventError, request_from
from ivr.secrets import scrub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ivr.ledger.core import Verdict
    from ivr.ledger.storage import LedgerStorage

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

    def __init__(
        self,
        *,
        store: LedgerStorage,
        source: str,
        only_from: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """``source`` names this ledger instance in the events it emits.

        ``only_from`` keeps a private ledger (a replayed scenario's) to one IVR's events on a
        shared broker; `ivr ledger` takes every IVR's. ``now`` stamps its events (default: the
        wall clock); the trainer console passes the call's simulated clock, so the ledger's event
        carries the same day and hour as the call it answers.
        """
        self.store = store
        self.source = source
        self.only_from = only_from
        self._now = now or (lambda: datetime.now(UTC))
        prepare(EventType.TICKET_CREATED)

    async def handle(self, payloads: Iterable[bytes]) -> Handled:
        """Validate against the event contract, then apply a batch in one transaction."""
        handled = Handled()
        requests: list[DeductionRequest] = []
        applying: list[bytes] = []  # the payload of each request, in order
        for payload in payloads:
            try:
                request = request_from(parse(payload), digest=hashlib.blake2b(payload, digest_size=16).digest())
            except (InvalidEventError, MalformedEventError) as exc:
                handled.dead.append(DeadLetter(payload, str(exc)))
                continue
            if request is None or (self.only_from is not None and request.source != self.only_from):
                handled.ignored += 1
            else:
                requests.append(request)
                applying.append(payload)
        now = self._now().isoformat()
        applied = await self.store.apply(requests, source=self.source, now=now)
        handled.verdicts = applied.verdicts
        if applied.conflicts:
            payload_of = {id(request): payload for request, payload in zip(requests, applying, strict=True)}
            handled.dead += [DeadLetter(payload_of[id(c)], _conflict(c)) for c in applied.conflicts]
        return handled


def _conflict(request: DeductionRequest) -> str:
    """The dead-letter reason of a conflicting request: which event, and that its first version stands."""
    return scrub(
        f"conflict: event {request.event_id!r} from {request.source!r} was applied before with other "
        "content; that first version stands and this one is not applied"
    )
