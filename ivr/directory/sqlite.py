"""The directory in SQLite, through aiosqlite: lookups for the rules, and the IVR's writes.

aiosqlite runs every statement on one thread per connection, and each ``await`` is a thread hop
(~88 us measured here), so the hop count per call is what bounds throughput:

- a lookup is one JOIN read with ``execute_fetchall`` (one hop, where execute + fetchone + close
  is three);
- writes go through one writer task that commits in groups: every write job queued while the
  previous commit ran is applied in the next transaction, consecutive statements of one shape
  merged into one ``executemany``. A job is all-or-nothing inside its group's transaction, so a
  new ticket and its events (the outbox) stand or fall together: a hang-up or a crash never leaves
  a ticket without its ``ticket.created`` event, nor an event without its ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
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
    """A contract from its own row, or from a JOIN where its id and customer are ``c_``-prefixed."""
    joined = "c_id" in row.keys()  # noqa: SIM118 - sqlite3.Row has keys() but no __contains__ on names
    return Contract(
        id=row["c_id"] if joined else row["id"],
        customer_id=row["c_customer_id"] if joined else row["customer_id"],
        plan=Plan(row["plan"]),
        channels=frozenset(Channel(c) for c in row["channels"].split(",") if c),
        incidents=row["incidents"],
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_until=date.fromisoformat(row["valid_until"]),
        hours=_hours_from_json(row["hours"]),
    )


_Statement = tuple[str, list[tuple[Any, ...]]]  # SQL, rows for executemany


@dataclass(slots=True)
class _Job:
    """Statements to commit together, and the future their writer resolves."""

    statements: list[_Statement]
    done: asyncio.Future[None]


class Directory:
    """The IVR's SQLite database: the fixture world, tickets, lockout failures and the outbox."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Wrap an open connection; use :meth:`open`."""
        self._conn = conn
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._next_ticket = FIRST_NEW_TICKET
        self._ticket_step = 1

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        """Open (creating if need be) the directory at ``path``; ``":memory:"`` for a private one."""
        # Transactions begin IMMEDIATE: they take the write lock first, waiting for it if need be.
        # A deferred one reads first and can then fail at once with "database is locked" when
        # another writer on the file committed in between: WAL cannot turn a stale read into a
        # write, and the busy timeout does not cover that case. (`ivr relay` only reads it.)
        conn = await aiosqlite.connect(str(path), isolation_level="IMMEDIATE")
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
        """Finish the queued writes, then close the connection."""
        if self._writer is not None:
            await self._jobs.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._conn.close()

    # -- the group-commit writer ---------------------------------------------------------------

    async def _write(self, *statements: _Statement) -> None:
        """Commit ``statements`` together, in the writer's next group."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups(), name="directory-writer")
        job = _Job(list(statements), asyncio.get_running_loop().create_future())
        self._jobs.put_nowait(job)
        await job.done

    async def _write_groups(self) -> None:
        while True:
            group = [await self._jobs.get()]
            while not self._jobs.empty():
                group.append(self._jobs.get_nowait())
            try:
                await self._commit_group(group)
            except Exception as exc:  # noqa: BLE001 - the error belongs to the jobs; the writer goes on
                await self._conn.rollback()
                for job in group:
                    job.done.set_exception(exc)
            else:
                for job in group:
                    job.done.set_result(None)
            finally:
                for _ in group:
                    self._jobs.task_done()

    async def _commit_group(self, group: list[_Job]) -> None:
        merged: list[_Statement] = []
        for job in group:
            for sql, rows in job.statements:
                if merged and merged[-1][0] == sql:
                    merged[-1][1].extend(rows)
                else:
                    merged.append((sql, list(rows)))
        for sql, rows in merged:
            if rows:
                await self._conn.executemany(sql, rows)
        await self._conn.commit()

    async def load(self, world: World) -> None:
        """Put a fixture world in, replacing nothing: loading twice is an error of the caller.

        New tickets are numbered after the highest fixture ticket (from 2000001 at the least).
        """
        numbers = [int(t) for t in world.tickets]
        self._next_ticket = max([self._next_ticket, *(n + 1 for n in numbers)])
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
        await self._write(
            (
                "INSERT INTO customers VALUES (?, ?, ?)",
                [(c.id, c.name, c.kind.value) for c in world.customers.values()],
            ),
            (
                "INSERT INTO caller_numbers VALUES (?, ?)",
                [(n, c.id) for c in world.customers.values() for n in c.caller_numbers],
            ),
            ("INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_contract),
            ("INSERT INTO balances VALUES (?, ?, NULL)", [(c.id, c.incidents) for c in world.contracts.values()]),
            (
                "INSERT INTO support_codes VALUES (?, ?)",
                [(x.code, x.contract_id) for x in world.support_codes.values()],
            ),
            (
                "INSERT INTO license_keys VALUES (?, ?, ?)",
                [(k.key, k.product, k.contract_id) for k in world.license_keys.values()],
            ),
            (
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    (t.id, t.customer_id, t.contract_id, t.status.value, t.purpose.value, t.severity.value)
                    for t in world.tickets.values()
                ],
            ),
        )

    # -- lookups: one hop each -----------------------------------------------------------------

    async def _one(self, sql: str, *args: Any) -> aiosqlite.Row | None:  # noqa: ANN401 - SQL parameters
        rows = list(await self._conn.execute_fetchall(sql, args))
        return rows[0] if rows else None

    async def find_ticket(self, ticket_id: str) -> tuple[Ticket, Contract, int | None] | None:
        """A ticket with its contract and the contract's balance, in one read."""
        row = await self._one(_WITH_CONTRACT.format(table="tickets t", key="t.id"), ticket_id)
        return (_ticket(row), _contract(row), row["balance"]) if row else None

    async def find_code(self, code: str) -> tuple[SupportCode, Contract, int | None] | None:
        """A support code with its contract and the contract's balance, in one read."""
        row = await self._one(_WITH_CONTRACT.format(table="support_codes t", key="t.code"), code)
        return (
            (SupportCode(code=row["code"], contract_id=row["contract_id"]), _contract(row), row["balance"])
            if row
            else None
        )

    async def find_key(self, key: str) -> tuple[LicenseKey, Contract, int | None] | None:
        """A license key with its contract and the contract's balance, in one read."""
        row = await self._one(_WITH_CONTRACT.format(table="license_keys t", key="t.key"), key)
        if row is None:
            return None
        return (
            LicenseKey(key=row["key"], product=row["product"], contract_id=row["contract_id"]),
            _contract(row),
            row["balance"],
        )

    async def ticket(self, ticket_id: str) -> Ticket | None:
        """A ticket by ID."""
        row = await self._one("SELECT * FROM tickets WHERE id = ?", ticket_id)
        return _ticket(row) if row else None

    async def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        row = await self._one("SELECT balance FROM balances WHERE contract_id = ?", contract_id)
        return row["balance"] if row else None

    async def balances(self) -> dict[str, int | None]:
        """Every contract's balance, as the IVR sees it."""
        rows = await self._conn.execute_fetchall("SELECT contract_id, balance FROM balances ORDER BY contract_id")
        return {row[0]: row[1] for row in rows}

    async def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``."""
        rows = await self._conn.execute_fetchall(
            "SELECT at FROM auth_failures WHERE caller = ? AND at >= ? ORDER BY at", (caller, _utc(since))
        )
        return [datetime.fromisoformat(row[0]) for row in rows]

    async def deductible_tickets(self) -> list[tuple[str, str, str]]:
        """(source, event id, ticket) of every ``ticket.created`` that asks the ledger to deduct."""
        rows = await self._conn.execute_fetchall(
            "SELECT payload FROM outbox WHERE topic LIKE '%/ticket/created' ORDER BY seq"
        )
        events = (json.loads(row[0]) for row in rows)
        return [(e["source"], e["id"], e["data"]["ticket"]) for e in events if e["data"].get("deduct")]

    # -- writes: through the group-commit writer -----------------------------------------------

    def next_ticket_id(self) -> str:
        """Reserve the next new ticket ID (this process owns the numbering, or its share of it)."""
        ticket_id = str(self._next_ticket)
        self._next_ticket += self._ticket_step
        return ticket_id

    def share_ticket_numbers(self, shard: int, shards: int) -> None:
        """Number new tickets as IVR ``shard`` of ``shards`` on the same world: every ``shards``-th ID.

        IVRs that split the callers between them (by number, so each caller's lockout stays in
        one IVR) each keep a directory of their own; ticket IDs must still be unique on the line,
        because the ledger deducts once per ticket. Call after :meth:`load`, before any call.
        """
        if not 0 <= shard < shards:
            msg = f"shard {shard} of {shards} does not exist"
            raise ValueError(msg)
        while (self._next_ticket - FIRST_NEW_TICKET) % shards != shard:
            self._next_ticket += 1
        self._ticket_step = shards

    async def record_failure(self, caller: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A failed authorization, for the lockout, with the events that report it."""
        await self._write(("INSERT INTO auth_failures VALUES (?, ?)", [(caller, _utc(at))]), _outbox(events))

    async def create_ticket(self, ticket: Ticket, *, call_id: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A new ticket and its events, in one transaction."""
        row = (
            ticket.id,
            ticket.customer_id,
            ticket.contract_id,
            ticket.status.value,
            ticket.purpose.value,
            ticket.severity.value,
            call_id,
            at.isoformat(),
        )
        await self._write(("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [row]), _outbox(events))

    async def add_events(self, events: Iterable[CloudEvent]) -> None:
        """Events with no other write to go with them."""
        await self._write(_outbox(events))

    async def take_ledger_event(self, event: CloudEvent) -> None:
        """Take the ledger's word for a contract's balance, so "incidents available" sees deductions.

        Ledger events may arrive late or twice; ``as_of`` keeps an older event from undoing a newer.
        """
        balance = event.data.get("balance_after")
        if not isinstance(balance, int):
            return
        await self._write(
            (
                (
                    "UPDATE balances SET balance = ?, as_of = ? "
                    "WHERE contract_id = ? AND balance IS NOT NULL AND (as_of IS NULL OR as_of <= ?)"
                ),
                [(balance, event.time, event.data["contract"], event.time)],
            ),
        )

    # -- the outbox, for the publisher -----------------------------------------------------

    async def unsent(self, limit: int) -> list[OutboxRow]:
        """The oldest events not yet acknowledged by the broker, in order."""
        rows = await self._conn.execute_fetchall(
            "SELECT seq, topic, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def outbox_end(self) -> int:
        """The ``seq`` of the newest outbox row (0 when empty): how far a relay must get to be drained."""
        rows = list(await self._conn.execute_fetchall("SELECT MAX(seq) FROM outbox"))
        return int(rows[0][0] or 0)

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Outbox rows the broker acknowledged."""
        await self._write(("UPDATE outbox SET sent_at = ? WHERE seq = ?", [(at, s) for s in seqs]))


_WITH_CONTRACT: Final = (
    "SELECT t.*, c.id AS c_id, c.customer_id AS c_customer_id, c.plan, c.channels, c.incidents, c.valid_from, "
    "c.valid_until, c.hours, b.balance FROM {table} JOIN contracts c ON c.id = t.contract_id "
    "JOIN balances b ON b.contract_id = c.id WHERE {key} = ?"
)


def _utc(instant: datetime) -> str:
    """An instant as UTC ISO text: stored instants compare as text, so they share one offset."""
    return instant.astimezone(UTC).isoformat()


def _outbox(events: Iterable[CloudEvent]) -> _Statement:
    return (
        "INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)",
        [(e.id, e.topic, e.to_json()) for e in events],
    )


def _ticket(row: aiosqlite.Row) -> Ticket:
    return Ticket(
        id=row["id"],
        customer_id=row["customer_id"],
        contract_id=row["contract_id"],
        status=TicketStatus(row["status"]),
        purpose=Purpose(row["purpose"]),
        severity=Severity(row["severity"]),
    )
