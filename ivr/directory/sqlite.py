"""The directory in SQLite, through aiosqlite: lookups for the rules, and the IVR's writes.

Writes that must stand or fall together run in one transaction under one lock: a new ticket and
its events (the outbox) are committed together, so a hang-up or a crash never leaves a ticket
without its ``ticket.created`` event or an event without its ticket. aiosqlite runs every
statement on one thread per connection, so statements of two tasks would interleave inside one
transaction without the lock.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final, Self
from zoneinfo import ZoneInfo

import aiosqlite

from ivr.auth.model import (
    Channel,
    Contract,
    LicenseKey,
    Plan,
    Purpose,
    Severity,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ivr.directory.fixtures import World
    from ivr.events import CloudEvent

__all__ = ["FIRST_NEW_TICKET", "Directory", "OutboxRow"]

#: New tickets are numbered from here; fixture tickets sit below, so a replay's IDs are stable.
FIRST_NEW_TICKET: Final = 2_000_001

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS caller_numbers (
    number TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id));
CREATE TABLE IF NOT EXISTS contracts (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), plan TEXT NOT NULL,
    channels TEXT NOT NULL, incidents INTEGER, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL,
    hours TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (
    contract_id TEXT PRIMARY KEY REFERENCES contracts(id), balance INTEGER, as_of TEXT);
CREATE TABLE IF NOT EXISTS support_codes (
    code TEXT PRIMARY KEY, contract_id TEXT NOT NULL REFERENCES contracts(id));
CREATE TABLE IF NOT EXISTS license_keys (
    key TEXT PRIMARY KEY, product TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id));
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id),
    status TEXT NOT NULL, purpose TEXT NOT NULL, severity TEXT NOT NULL, call_id TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS auth_failures (caller TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS auth_failures_caller ON auth_failures (caller, at);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
    payload TEXT NOT NULL, sent_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
"""


OutboxRow = tuple[int, str, str]  # seq, topic, payload


def _hours_to_json(hours: SupportHours) -> str:
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


def _contract(row: aiosqlite.Row) -> Contract:
    return Contract(
        id=row["id"],
        customer_id=row["customer_id"],
        plan=Plan(row["plan"]),
        channels=frozenset(Channel(c) for c in row["channels"].split(",") if c),
        incidents=row["incidents"],
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_until=date.fromisoformat(row["valid_until"]),
        hours=_hours_from_json(row["hours"]),
    )


class Directory:
    """The IVR's SQLite database: the fixture world, tickets, lockout failures and the outbox."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Wrap an open connection; use :meth:`open`."""
        self._conn = conn
        self._write = asyncio.Lock()
        self._next_ticket = FIRST_NEW_TICKET

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        """Open (creating if need be) the directory at ``path``; ``":memory:"`` for a private one."""
        conn = await aiosqlite.connect(str(path))
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.executescript(_SCHEMA)
        await conn.commit()
        directory = cls(conn)
        async with conn.execute("SELECT MAX(CAST(id AS INTEGER)) FROM tickets") as cur:
            row = await cur.fetchone()
        if row and row[0] is not None:
            directory._next_ticket = max(FIRST_NEW_TICKET, int(row[0]) + 1)
        return directory

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def load(self, world: World) -> None:
        """Put a fixture world in, replacing nothing: loading twice is an error of the caller."""
        rows_contract = [
            (
                c.id,
                c.customer_id,
                c.plan.value,
                ",".join(sorted(c.channels)),
                c.incidents,
                c.valid_from.isoformat(),
                c.valid_until.isoformat(),
                _hours_to_json(c.hours),
            )
            for c in world.contracts.values()
        ]
        async with self._write:
            await self._conn.executemany(
                "INSERT INTO customers VALUES (?, ?, ?)",
                [(c.id, c.name, c.kind.value) for c in world.customers.values()],
            )
            await self._conn.executemany(
                "INSERT INTO caller_numbers VALUES (?, ?)",
                [(n, c.id) for c in world.customers.values() for n in c.caller_numbers],
            )
            await self._conn.executemany("INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_contract)
            await self._conn.executemany(
                "INSERT INTO balances VALUES (?, ?, NULL)",
                [(c.id, c.incidents) for c in world.contracts.values()],
            )
            await self._conn.executemany(
                "INSERT INTO support_codes VALUES (?, ?)",
                [(s.code, s.contract_id) for s in world.support_codes.values()],
            )
            await self._conn.executemany(
                "INSERT INTO license_keys VALUES (?, ?, ?)",
                [(k.key, k.product, k.contract_id) for k in world.license_keys.values()],
            )
            await self._conn.executemany(
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    (t.id, t.customer_id, t.contract_id, t.status.value, t.purpose.value, t.severity.value)
                    for t in world.tickets.values()
                ],
            )
            await self._conn.commit()

    # -- lookups ----------------------------------------------------------------------------

    async def _one(self, sql: str, *args: Any) -> aiosqlite.Row | None:  # noqa: ANN401
        async with self._conn.execute(sql, args) as cur:
            return await cur.fetchone()

    async def contract(self, contract_id: str) -> Contract | None:
        """A contract by ID."""
        row = await self._one("SELECT * FROM contracts WHERE id = ?", contract_id)
        return _contract(row) if row else None

    async def ticket(self, ticket_id: str) -> Ticket | None:
        """A ticket by ID."""
        row = await self._one("SELECT * FROM tickets WHERE id = ?", ticket_id)
        if row is None:
            return None
        return Ticket(
            id=row["id"],
            customer_id=row["customer_id"],
            contract_id=row["contract_id"],
            status=TicketStatus(row["status"]),
            purpose=Purpose(row["purpose"]),
            severity=Severity(row["severity"]),
        )

    async def support_code(self, code: str) -> SupportCode | None:
        """A support code's record."""
        row = await self._one("SELECT * FROM support_codes WHERE code = ?", code)
        return SupportCode(code=row["code"], contract_id=row["contract_id"]) if row else None

    async def license_key(self, key: str) -> LicenseKey | None:
        """A license key's record."""
        row = await self._one("SELECT * FROM license_keys WHERE key = ?", key)
        return LicenseKey(key=row["key"], product=row["product"], contract_id=row["contract_id"]) if row else None

    async def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        row = await self._one("SELECT balance FROM balances WHERE contract_id = ?", contract_id)
        return row["balance"] if row else None

    async def balances(self) -> dict[str, int | None]:
        """Every contract's balance, as the IVR sees it."""
        async with self._conn.execute("SELECT contract_id, balance FROM balances ORDER BY contract_id") as cur:
            return {row[0]: row[1] async for row in cur}

    async def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``."""
        async with self._conn.execute(
            "SELECT at FROM auth_failures WHERE caller = ? AND at >= ? ORDER BY at",
            (caller, since.isoformat()),
        ) as cur:
            return [datetime.fromisoformat(row[0]) async for row in cur]

    # -- writes -----------------------------------------------------------------------------

    def next_ticket_id(self) -> str:
        """Reserve the next new ticket ID (this process owns the numbering)."""
        ticket_id = str(self._next_ticket)
        self._next_ticket += 1
        return ticket_id

    async def record_failure(self, caller: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A failed authorization, for the lockout, with the events that report it."""
        async with self._write:
            await self._conn.execute("INSERT INTO auth_failures VALUES (?, ?)", (caller, at.isoformat()))
            await self._insert_events(events)
            await self._conn.commit()

    async def create_ticket(
        self, ticket: Ticket, *, call_id: str, at: datetime, events: Iterable[CloudEvent],
    ) -> None:
        """A new ticket and its events, in one transaction."""
        async with self._write:
            await self._conn.execute(
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ticket.id,
                    ticket.customer_id,
                    ticket.contract_id,
                    ticket.status.value,
                    ticket.purpose.value,
                    ticket.severity.value,
                    call_id,
                    at.isoformat(),
                ),
            )
            await self._insert_events(events)
            await self._conn.commit()

    async def add_events(self, events: Iterable[CloudEvent]) -> None:
        """Events with no other write to go with them."""
        async with self._write:
            await self._insert_events(events)
            await self._conn.commit()

    async def _insert_events(self, events: Iterable[CloudEvent]) -> None:
        await self._conn.executemany(
            "INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)",
            [(e.id, e.topic, e.to_json()) for e in events],
        )

    async def take_ledger_event(self, event: CloudEvent) -> None:
        """Take the ledger's word for a contract's balance, so "incidents available" sees deductions.

        Ledger events may arrive late or twice; ``as_of`` keeps an older event from undoing a newer.
        """
        balance = event.data.get("balance_after")
        if not isinstance(balance, int):
            return
        async with self._write:
            await self._conn.execute(
                "UPDATE balances SET balance = ?, as_of = ? "
                "WHERE contract_id = ? AND balance IS NOT NULL AND (as_of IS NULL OR as_of <= ?)",
                (balance, event.time, event.data["contract"], event.time),
            )
            await self._conn.commit()

    # -- the outbox, for the publisher -----------------------------------------------------

    async def unsent(self, limit: int) -> list[OutboxRow]:
        """The oldest events not yet acknowledged by the broker, in order."""
        async with self._conn.execute(
            "SELECT seq, topic, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit,),
        ) as cur:
            return [(row[0], row[1], row[2]) async for row in cur]

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Outbox rows the broker acknowledged."""
        async with self._write:
            await self._conn.executemany("UPDATE outbox SET sent_at = ? WHERE seq = ?", [(at, s) for s in seqs])
            await self._conn.commit()
