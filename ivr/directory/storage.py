"""What the IVR asks of its store, whichever database holds it (SQLite embedded, PostgreSQL shared).

The engine, the links and the publisher know only :class:`DirectoryStorage`. An adapter keeps
its speed-ups to itself (SQLite's group commits on the loop's thread), and what must hold across
processes is the database's to decide (PostgreSQL's sequence for ticket IDs, its advisory locks
for a number's authorizations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime

    from ivr.auth.model import Contract, LicenseKey, OwnedTicket, SupportCode, Ticket
    from ivr.directory.fixtures import World
    from ivr.events import CloudEvent

__all__ = ["DirectoryStorage", "OutboxRow"]

#: An outbox row as the publisher reads it: (position, topic, payload). Positions grow in the
#: order rows are to be published, and a row is never given a position below one already read.
OutboxRow = tuple[int, str, str]


class DirectoryStorage(Protocol):
    """The fixture world, tickets, lockout failures and the outbox of one or more IVR processes."""

    async def load(self, world: World) -> None:
        """Put a fixture world in; new tickets are numbered after its highest."""
        ...

    async def close(self) -> None:
        """Finish the queued writes and let go of the database."""
        ...

    # -- lookups ---------------------------------------------------------------------------------

    async def find_ticket(self, ticket_id: str) -> OwnedTicket | None:
        """A ticket with its contract, its owner's kind and the owner's other contracts, with balances."""
        ...

    async def find_code(self, code: str) -> tuple[SupportCode, Contract, int | None] | None:
        """The support code typed, with its contract and the contract's balance (found by its keyed hash)."""
        ...

    async def find_key(self, key: str) -> tuple[LicenseKey, Contract, int | None] | None:
        """The license key typed, with its contract and the contract's balance (found by its keyed hash)."""
        ...

    async def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        ...

    async def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``, from every IVR on the store."""
        ...

    def caller_lock(self, caller: str) -> AbstractAsyncContextManager[None]:
        """Hold ``caller``'s authorization step against every other IVR process on the store."""
        ...

    # -- writes ------------------------------------------------------------------------------------

    async def next_ticket_id(self) -> str:
        """A new ticket ID, unique among every IVR on the store."""
        ...

    async def record_failure(self, caller: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A failed authorization, for the lockout, with the events that report it, in one transaction."""
        ...

    async def create_ticket(self, ticket: Ticket, *, call_id: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A new ticket and its events, in one transaction."""
        ...

    async def add_events(self, events: Iterable[CloudEvent]) -> None:
        """Events with no other write to go with them."""
        ...

    async def take_ledger_events(self, events: Iterable[CloudEvent]) -> None:
        """Take the ledger's word for contracts' balances, in one write; an older event never undoes a newer."""
        ...

    # -- the outbox --------------------------------------------------------------------------------

    async def unsent(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """Up to ``limit`` rows not yet acknowledged, after position ``after``, in publishing order."""
        ...

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Rows (by position) the broker acknowledged."""
        ...

    async def outbox_end(self) -> int:
        """The position of the newest row a publisher can read now (0 when none)."""
        ...

    async def deductible_tickets(self) -> list[tuple[str, str, str]]:
        """(source, event id, ticket) of every ``ticket.created`` that asks the ledger to deduct."""
        ...
