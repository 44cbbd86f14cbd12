"""What the ledger asks of its store, whichever database holds it (SQLite embedded, PostgreSQL shared).

The ledger's service, its consumer and its announcer know only :class:`LedgerStorage`. Every
adapter keeps the same promises: one entry per (source, event id) and per (source, ticket), a
repeat changing nothing and another event under a known key reported as a conflict; the last
incident of a contract going to one request however many ledgers share the store; and the
announcements readable in an order that a publisher's high-water mark never skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ivr.events import topic_for
from ivr.ledger.core import DeductionRequest, Outcome, Verdict, decide, event_type, ledger_event

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "Applied",
    "Entry",
    "LedgerStorage",
    "VerifyReport",
    "announcement",
    "announcement_topic",
    "decide_batch",
    "entry_row",
    "verify_report",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch did: the verdicts of the requests new to the store, and the conflicting ones.

    A conflict is a request whose key (source and event id) has an entry made from another event
    (another digest): the entry stands, and the request is reported, never applied.
    """

    verdicts: list[Verdict] = field(default_factory=list)
    conflicts: list[DeductionRequest] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Entry:
    """One applied request, as `ivr ledger history` shows it."""

    applied_at: str
    contract_id: str
    ticket_id: str
    outcome: str
    reason: str | None
    balance_after: int | None
    source: str
    event_id: str


@dataclass(slots=True)
class VerifyReport:
    """What `ivr ledger verify` found; ``ok`` only when there is no problem at all."""

    contracts: int = 0
    deductions: int = 0
    rejections: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mismatch was found."""
        return not self.problems


class LedgerStorage(Protocol):
    """Balances, one entry per deduction request, and the announcements still to publish."""

    async def close(self) -> None:
        """Let go of the database."""
        ...

    async def load_opening(self, incidents: Mapping[str, int | None]) -> None:
        """Opening balances by contract (``None``: unlimited); contracts already known keep theirs."""
        ...

    async def apply(self, requests: Iterable[DeductionRequest], *, source: str, now: str) -> Applied:
        """Apply a batch in one transaction: the verdicts of what was new, in order, and the conflicts."""
        ...

    async def unsent(
        self, limit: int = 1000, *, after: int = 0, ledger: str | None = None
    ) -> list[tuple[int, str, str]]:
        """Announcements not yet acknowledged, after position ``after``, in order: (position, topic, JSON).

        With ``ledger``, only the entries that ledger applied (its announcer's share of a store
        several ledgers apply to).
        """
        ...

    async def mark_sent(self, rowids: Iterable[int], at: str) -> None:
        """The broker acknowledged these announcements (by position)."""
        ...

    async def balances(self) -> dict[str, tuple[int | None, int | None]]:
        """Every contract's (opening, balance); ``None`` is unlimited."""
        ...

    async def history(self, contract_id: str) -> list[Entry]:
        """A contract's entries, oldest first."""
        ...

    async def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        ...

    async def deducted(self) -> dict[str, int]:
        """Incidents deducted so far, by contract."""
        ...

    async def verify(self, expected: Iterable[tuple[str, str]] | None = None) -> VerifyReport:
        """Opening balances minus deductions equal today's balances, none below zero; each expected ticket applied."""
        ...


def verify_report(
    balances: Mapping[str, tuple[int | None, int | None]],
    deducted: Mapping[str, int],
    applied: Mapping[tuple[str, str], str],
    expected: Iterable[tuple[str, str]] | None,
) -> VerifyReport:
    """The report of one consistent reading: balances, deductions by contract, each (source, ticket)'s outcome."""
    report = VerifyReport(contracts=len(balances))
    for contract, (opening, balance) in balances.items():
        used = deducted.get(contract, 0)
        report.deductions += used
        if opening is None:
            if used:
                report.problems.append(f"{contract}: unlimited, yet {used} deducted")
            continue
        if balance is None or balance < 0 or opening - used != balance:
            report.problems.append(f"{contract}: opening {opening} - deducted {used} != balance {balance}")
    report.rejections = sum(1 for o in applied.values() if o == Outcome.REJECTED)
    for source, ticket in expected or ():
        if (source, ticket) not in applied:
            report.problems.append(f"ticket {ticket} from {source}: deductible, never applied")
    return report


def decide_batch(
    batch: Iterable[DeductionRequest],
    balances: dict[str, int | None],
    known: set[str],
    digests: dict[str, bytes | None],
    tickets: set[tuple[str, str]],
) -> Applied:
    """Decide a batch against what the store holds, in arrival order; ``balances`` is left as they end.

    ``digests`` are the batch's keys already in the store (``None``: an entry made before digests
    were kept), ``tickets`` its (source, ticket) pairs already there; both grow with the batch's
    new requests, so a repeat inside the batch is a duplicate too.
    """
    applied = Applied()
    for request in batch:
        key, ticket = request.key, (request.source, request.ticket_id)
        if key in digests:
            if digests[key] not in (None, request.digest):
                applied.conflicts.append(request)
            continue
        if ticket in tickets:
            continue
        digests[key] = request.digest
        tickets.add(ticket)
        verdict = decide(request, balances.get(request.contract_id), known=request.contract_id in known)
        if verdict.outcome is Outcome.DEDUCTED:
            balances[request.contract_id] = verdict.balance_after
        applied.verdicts.append(verdict)
    return applied


def entry_row(verdict: Verdict, now: str, ledger: str) -> tuple[Any, ...]:
    """A verdict's entry, in the column order both stores share (key ... ledger, digest)."""
    request = verdict.request
    return (
        request.key,
        request.source,
        request.event_id,
        request.call_id,
        request.contract_id,
        request.ticket_id,
        verdict.outcome.value,
        verdict.reason,
        verdict.balance_after,
        now,
        ledger,
        request.digest,
    )


def announcement_topic(outcome: str) -> str:
    """The topic of the event that announces an entry of ``outcome``."""
    return topic_for(event_type(Outcome(outcome)))


def announcement(  # noqa: PLR0913, PLR0917 - one positional argument per column, as SQLite calls it
    source: str,
    event_id: str,
    call_id: str,
    contract_id: str,
    ticket_id: str,
    outcome: str,
    reason: str | None,
    balance_after: int | None,
    applied_at: str,
    ledger: str,
) -> str:
    """The JSON of the event that announces an entry, built from the entry's columns."""
    request = DeductionRequest(
        source=source, event_id=event_id, call_id=call_id, contract_id=contract_id, ticket_id=ticket_id
    )
    verdict = Verdict(request=request, outcome=Outcome(outcome), balance_after=balance_after, reason=reason)
    return ledger_event(verdict, source=ledger, time=applied_at).to_json()
