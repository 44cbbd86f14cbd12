"""What every directory adapter stores the same way: hours as JSON, rows to models, the pepper's check.

SQLite and PostgreSQL keep the same tables, so a contract, a ticket or an owner's standing is
read from a row by one function whichever database gave it.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Final, Protocol
from zoneinfo import ZoneInfo

from ivr.auth.model import (
    CallerKind,
    Channel,
    Contract,
    LicenseKey,
    OwnedTicket,
    Plan,
    Purpose,
    Severity,
    Standing,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)
from ivr.secrets import PEPPER_ENV, PepperError, digest, new_pepper

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ivr.directory.fixtures import World
    from ivr.events import CloudEvent

__all__ = [
    "FIRST_NEW_TICKET",
    "TICKET_WITH_OWNER",
    "WITH_CONTRACT",
    "Row",
    "code_found",
    "contract_rows",
    "deductible",
    "hours_to_json",
    "key_found",
    "outbox_rows",
    "owned_ticket",
    "settle_pepper",
    "utc",
]

#: New tickets are numbered from here; fixture tickets sit below, so a replay's IDs are stable.
FIRST_NEW_TICKET: Final = 2_000_001

#: A ticket's rows: one per contract of its owner (its own contract among them), with the balance
#: and the owner's kind. An owner holds a handful of contracts, found through contracts_customer.
#: ``{p}`` is the adapter's parameter mark (``?`` or ``$1``).
TICKET_WITH_OWNER: Final = (
    "SELECT t.*, o.kind AS owner_kind, c.id AS c_id, c.customer_id AS c_customer_id, c.plan, c.channels, "
    "c.incidents, c.valid_from, c.valid_until, c.hours, b.balance FROM tickets t "
    "JOIN customers o ON o.id = t.customer_id "
    "JOIN contracts c ON c.id = t.contract_id OR c.customer_id = t.customer_id "
    "JOIN balances b ON b.contract_id = c.id WHERE t.id = {p}"
)
#: A code's or key's row with its contract and balance (``{table}``: ``support_codes`` or ``license_keys``).
WITH_CONTRACT: Final = (
    "SELECT t.*, c.id AS c_id, c.customer_id AS c_customer_id, c.plan, c.channels, c.incidents, c.valid_from, "
    "c.valid_until, c.hours, b.balance FROM {table} t JOIN contracts c ON c.id = t.contract_id "
    "JOIN balances b ON b.contract_id = c.id WHERE t.digest = {p}"
)
#: What the pepper check value hashes: a known text, so a wrong pepper shows without any code.
_PEPPER_CHECK: Final = "ivr directory pepper"


class Row(Protocol):
    """A result row by column name: ``sqlite3.Row`` and ``asyncpg.Record`` both are."""

    def __getitem__(self, name: str, /) -> Any:  # noqa: ANN401 - a column of any type
        """The value of column ``name``."""
        ...


def hours_to_json(hours: SupportHours) -> str:
    """A contract's support hours as the JSON text both databases keep."""
    return json.dumps(
        {
            "tz": hours.tz.key,
            "weekdays": sorted(hours.weekdays),
            "opens": hours.opens.isoformat(),
            "closes": hours.closes.isoformat(),
            "always": hours.always,
        },
    )


def _hours_from_json(text: str) -> SupportHours:
    raw = json.loads(text)
    return SupportHours(
        tz=ZoneInfo(raw["tz"]),
        weekdays=frozenset(raw["weekdays"]),
        opens=time.fromisoformat(raw["opens"]),
        closes=time.fromisoformat(raw["closes"]),
        always=raw["always"],
    )


def _contract(row: Row) -> Contract:
    """A contract from a JOIN where its id and customer are ``c_``-prefixed."""
    return Contract(
        id=row["c_id"],
        customer_id=row["c_customer_id"],
        plan=Plan(row["plan"]),
        channels=frozenset(Channel(c) for c in row["channels"].split(",") if c),
        incidents=row["incidents"],
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_until=date.fromisoformat(row["valid_until"]),
        hours=_hours_from_json(row["hours"]),
    )


def owned_ticket(rows: Sequence[Row]) -> OwnedTicket | None:
    """A ticket with its owner's standings from the rows of :data:`TICKET_WITH_OWNER`."""
    if not rows:
        return None
    first = rows[0]
    ticket = Ticket(
        id=first["id"],
        customer_id=first["customer_id"],
        contract_id=first["contract_id"],
        status=TicketStatus(first["status"]),
        purpose=Purpose(first["purpose"]),
        severity=Severity(first["severity"]),
    )
    standings = [Standing(contract=_contract(row), balance=row["balance"]) for row in rows]
    own = next((s for s in standings if s.contract.id == ticket.contract_id), None)
    if own is None:  # as for a code or key: a ticket whose contract is missing is not found
        return None
    return OwnedTicket(
        ticket=ticket,
        owner_kind=CallerKind(first["owner_kind"]),
        own=own,
        others=tuple(s for s in standings if s is not own),
    )


def code_found(code: str, row: Row | None) -> tuple[SupportCode, Contract, int | None] | None:
    """The code the caller typed, with its contract and balance, from a row of :data:`WITH_CONTRACT`."""
    if row is None:
        return None
    return SupportCode(code=code, contract_id=row["contract_id"]), _contract(row), row["balance"]


def key_found(key: str, row: Row | None) -> tuple[LicenseKey, Contract, int | None] | None:
    """The key the caller typed, with its contract and balance, from a row of :data:`WITH_CONTRACT`."""
    if row is None:
        return None
    return (
        LicenseKey(key=key, product=row["product"], contract_id=row["contract_id"]),
        _contract(row),
        row["balance"],
    )


def contract_rows(world: World, pepper: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """A fixture world's rows, by table, in the column order both schemas share; codes and keys hashed."""
    return {
        "customers": [(c.id, c.name, c.kind.value) for c in world.customers.values()],
        "caller_numbers": [(n, c.id) for c in world.customers.values() for n in c.caller_numbers],
        "contracts": [
            (
                c.id,
                c.customer_id,
                c.plan.value,
                ",".join(sorted(c.channels)),
                c.incidents,
                c.valid_from.isoformat(),
                c.valid_until.isoformat(),
                hours_to_json(c.hours),
            )
            for c in world.contracts.values()
        ],
        "balances": [(c.id, c.incidents) for c in world.contracts.values()],
        "support_codes": [(digest(pepper, x.code), x.code[-2:], x.contract_id) for x in world.support_codes.values()],
        "license_keys": [
            (digest(pepper, k.key), k.key[-2:], k.product, k.contract_id) for k in world.license_keys.values()
        ],
        "tickets": [
            (t.id, t.customer_id, t.contract_id, t.status.value, t.purpose.value, t.severity.value)
            for t in world.tickets.values()
        ],
    }


def settle_pepper(
    stored: bytes | None, check: bytes | None, given: bytes | None, where: str
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The pepper for a store's codes and keys, and the ``meta`` rows to add on its first open.

    ``given`` is the configured pepper, ``stored`` and ``check`` what the store's ``meta`` holds.
    A configured pepper is never stored, only its check value; one other than the store was made
    with is a :class:`~ivr.secrets.PepperError` (every lookup would miss).
    """
    if given is None and stored is None and check is not None:
        msg = f"{where}: its codes and keys were hashed with a configured pepper: set {PEPPER_ENV} to it"
        raise PepperError(msg)
    pepper = given or stored or new_pepper()
    if check is None:
        rows = [("pepper_check", digest(pepper, _PEPPER_CHECK))]
        if given is None:
            rows.append(("pepper", pepper))
        return pepper, rows
    if not hmac.compare_digest(check, digest(pepper, _PEPPER_CHECK)):
        msg = f"{where}: its codes and keys were hashed with another pepper than {PEPPER_ENV} gives"
        raise PepperError(msg)
    return pepper, []


def ticket_row(ticket: Ticket, call_id: str, at: datetime) -> tuple[str, ...]:
    """A ticket made in a call, in the column order both schemas share."""
    return (
        ticket.id,
        ticket.customer_id,
        ticket.contract_id,
        ticket.status.value,
        ticket.purpose.value,
        ticket.severity.value,
        call_id,
        at.isoformat(),
    )


def utc(instant: datetime) -> str:
    """An instant as UTC ISO text: stored instants compare as text, so they share one offset."""
    return instant.astimezone(UTC).isoformat()


def outbox_rows(events: Iterable[CloudEvent]) -> list[tuple[str, str, str]]:
    """Events as outbox rows: (event id, topic, JSON payload)."""
    return [(e.id, e.topic, e.to_json()) for e in events]


def balances_taken(events: Iterable[CloudEvent]) -> list[tuple[int, str, str]]:
    """(balance, as of, contract) of each ledger event that states a contract's balance after it.

    An event that names no contract or no whole balance states nothing to take: the follower reads
    whatever arrives on the ledger's topics, and one odd event must not stop it.
    """
    return [
        (balance, e.time, contract)
        for e in events
        if isinstance(balance := e.data.get("balance_after"), int)
        and isinstance(contract := e.data.get("contract"), str)
    ]


def deductible(payloads: Iterable[str]) -> list[tuple[str, str, str]]:
    """(source, event id, ticket) of each ``ticket.created`` payload that asks the ledger to deduct."""
    events = (json.loads(payload) for payload in payloads)
    return [(e["source"], e["id"], e["data"]["ticket"]) for e in events if e["data"].get("deduct")]
