"""The directory in SQLite: lookups and writes on the event loop's thread, scans on aiosqlite's.

The IVR's own SQL is small and indexed: a lookup (a ticket, code or key with its contract; a
caller's recent failures) is one read of ~7 us, and a group commit a few inserts. Through
aiosqlite each statement was a hop to its thread and back, ~105 us of CPU here, and with 10,000
live calls the hops queued and each row of an ``executemany`` waited for the GIL while the loop
held it: one group of 1,500 outbox rows took 1.1 s, and every write behind it waited
(docs/performance.md, round 4). So one ``sqlite3`` connection serves both, on the loop's thread:

- a lookup runs to its end at once (``fetchall``), and sees every commit before it;
- a write queues a job and waits for its future; the first job of a turn of the loop schedules
  the commit, and every job queued by then goes into that one transaction, one ``executemany``
  per statement. A job is all-or-nothing inside its group's transaction, so a new ticket and its
  events (the outbox) stand or fall together: a hang-up or a crash never leaves a ticket without
  its ``ticket.created`` event, nor an event without its ticket;
- the file is in WAL mode with ``synchronous=NORMAL``: a commit appends to the WAL and does not
  wait for the disk. What does wait for it, the checkpoint that copies the WAL into the database
  and syncs it, runs on a second connection on aiosqlite's thread (SQLite's automatic one is off),
  passive, so the writer goes on meanwhile. That connection also runs the scans (the outbox for
  the publisher, every deductible ticket), which can be long.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Final, Self
from zoneinfo import ZoneInfo

import aiosqlite
import structlog

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
    from collections.abc import Iterable
    from pathlib import Path

    from ivr.directory.fixtures import World
    from ivr.events import CloudEvent

__all__ = ["CHECKPOINT_EVERY", "FIRST_NEW_TICKET", "Directory", "OutboxRow"]

log = structlog.get_logger("ivr.directory")

#: New tickets are numbered from here; fixture tickets sit below, so a replay's IDs are stable.
FIRST_NEW_TICKET: Final = 2_000_001
#: Commits between checkpoints. SQLite's automatic one runs at 1,000 WAL pages; a group commit
#: here writes a handful (the outbox, its indexes, a ticket), so this is about as often.
CHECKPOINT_EVERY: Final = 200

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS caller_numbers (
    number TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id));
CREATE TABLE IF NOT EXISTS contracts (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), plan TEXT NOT NULL,
    channels TEXT NOT NULL, incidents INTEGER, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL,
    hours TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contracts_customer ON contracts (customer_id);
CREATE TABLE IF NOT EXISTS balances (
    contract_id TEXT PRIMARY KEY REFERENCES contracts(id), balance INTEGER, as_of TEXT);
-- Codes and keys are bearer secrets: kept as keyed hashes (ivr.secrets.digest, under the pepper
-- in meta or from configuration) with their last two digits for display, never whole.
CREATE TABLE IF NOT EXISTS support_codes (
    digest BLOB PRIMARY KEY, last_two TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id));
CREATE TABLE IF NOT EXISTS license_keys (
    digest BLOB PRIMARY KEY, last_two TEXT NOT NULL, product TEXT NOT NULL,
    contract_id TEXT NOT NULL REFERENCES contracts(id));
-- The file's own pepper when none was configured (a second process opening the file finds it
-- here), and a check value that tells a configured pepper other than the file's.
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id),
    status TEXT NOT NULL, purpose TEXT NOT NULL, severity TEXT NOT NULL, call_id TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS auth_failures (caller TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS auth_failures_caller ON auth_failures (caller, at);
-- No unique index on event_id (files made before round 7 have one): the ids are random UUIDs,
-- so each row went into a random page of that index, and each group commit wrote those pages to
-- the WAL again: half the cost of an outbox row (docs/performance.md, round 7). Each event is
-- written once, by the call that made it; its consumers deduplicate by id in any case.
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, topic TEXT NOT NULL,
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


def _contract(row: sqlite3.Row) -> Contract:
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
    """Statements to commit together, and the future resolved once they are committed."""

    statements: list[_Statement]
    done: asyncio.Future[None]


class Directory:
    """The IVR's SQLite database: the fixture world, tickets, lockout failures and the outbox."""

    def __init__(self, db: sqlite3.Connection, scans: aiosqlite.Connection, pepper: bytes) -> None:
        """Wrap the open connections; use :meth:`open`."""
        self._db = db
        self._pepper = pepper
        self._scans = scans
        self._jobs: list[_Job] = []
        self._commits = 0  # since the last checkpoint began
        self._checkpoint: asyncio.Task[None] | None = None
        self._next_ticket = FIRST_NEW_TICKET
        self._ticket_step = 1

    @classmethod
    async def open(cls, path: Path | str, *, pepper: bytes | None = None) -> Self:
        """Open (creating if need be) the directory in the file at ``path``.

        Codes and keys are hashed under ``pepper`` (from configuration, :data:`ivr.secrets.PEPPER_ENV`);
        without one, under the pepper the file made for itself when it was created. A pepper other
        than the one the file was made with is a :class:`~ivr.secrets.PepperError`: every lookup
        would miss.
        """
        # Transactions begin IMMEDIATE: they take the write lock first. A deferred one reads first
        # and can then fail at once with "database is locked" when another writer on the file
        # committed in between (WAL cannot turn a stale read into a write). This process is the
        # file's one writer (`ivr relay` and `ivr ledger verify` only read it), so the lock is
        # never held by another and the loop never waits on it. Automatic checkpoints are off on
        # it: a checkpoint writes the database and syncs it to disk, which is for another thread.
        db = sqlite3.connect(path, isolation_level="IMMEDIATE")
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(_SCHEMA)
        db.commit()
        pepper = _file_pepper(db, pepper, path)
        scans = await aiosqlite.connect(path)
        directory = cls(db, scans, pepper)
        row = db.execute("SELECT MAX(CAST(id AS INTEGER)) FROM tickets").fetchone()
        if row and row[0] is not None:
            directory._next_ticket = max(FIRST_NEW_TICKET, int(row[0]) + 1)
        return directory

    async def close(self) -> None:
        """Commit the queued writes, let a running checkpoint end, then close both connections."""
        self._commit_queued()
        if self._checkpoint is not None:
            await self._checkpoint
        await self._scans.close()
        self._db.close()

    # -- writes: group commits on the loop's thread ----------------------------------------------

    async def _write(self, *statements: _Statement) -> None:
        """Commit ``statements`` together, with every other write queued in this turn of the loop."""
        if not self._jobs:
            asyncio.get_running_loop().call_soon(self._commit_queued)
        job = _Job(list(statements), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        await job.done

    def _commit_queued(self) -> None:
        group, self._jobs = self._jobs, []
        if not group:
            return
        try:
            self._commit_group(group)
        except Exception as exc:  # noqa: BLE001 - the error belongs to the jobs that wrote
            self._db.rollback()
            for job in group:
                if not job.done.done():
                    job.done.set_exception(exc)
        else:
            for job in group:
                if not job.done.done():
                    job.done.set_result(None)
            self._checkpoint_when_due()

    def _commit_group(self, group: list[_Job]) -> None:
        """One transaction, and one ``executemany`` per distinct statement in it.

        Rows keep their order within a statement (the outbox's ``seq`` order is the events'
        order); the order between statements does not matter inside one transaction: they
        touch different tables, or rows another statement of the group does not (``mark_sent``
        updates rows committed earlier), or are guarded by ``as_of`` (``take_ledger_event``).
        """
        merged: dict[str, list[tuple[Any, ...]]] = {}
        for job in group:
            for sql, rows in job.statements:
                merged.setdefault(sql, []).extend(rows)
        for sql, rows in merged.items():
            if rows:
                self._db.executemany(sql, rows)
        self._db.commit()
        self._commits += 1

    def _checkpoint_when_due(self) -> None:
        """Start a passive checkpoint on aiosqlite's thread every :data:`CHECKPOINT_EVERY` commits."""
        if self._commits < CHECKPOINT_EVERY or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint(), name="directory-checkpoint")

    async def _run_checkpoint(self) -> None:
        # PASSIVE: copies what it can without waiting for readers or the writer; the writer goes on.
        # A checkpoint that fails loses nothing (the log keeps every commit): the next one retries.
        try:
            await self._scans.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint failed; the next one retries", error=str(exc))

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
                "INSERT INTO support_codes VALUES (?, ?, ?)",
                [(digest(self._pepper, x.code), x.code[-2:], x.contract_id) for x in world.support_codes.values()],
            ),
            (
                "INSERT INTO license_keys VALUES (?, ?, ?, ?)",
                [
                    (digest(self._pepper, k.key), k.key[-2:], k.product, k.contract_id)
                    for k in world.license_keys.values()
                ],
            ),
            (
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    (t.id, t.customer_id, t.contract_id, t.status.value, t.purpose.value, t.severity.value)
                    for t in world.tickets.values()
                ],
            ),
        )

    # -- lookups: one indexed read each, on the loop's thread ---------------------------------

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:  # noqa: ANN401 - SQL parameters
        # fetchall, not fetchone: the statement runs to its end and resets, so the connection
        # holds no read snapshot between lookups (it would hide later commits from it).
        rows: list[sqlite3.Row] = self._db.execute(sql, args).fetchall()
        return rows[0] if rows else None

    def find_ticket(self, ticket_id: str) -> OwnedTicket | None:
        """A ticket with its contract, its owner's kind and the owner's other contracts, with balances, in one read."""
        rows: list[sqlite3.Row] = self._db.execute(_TICKET_WITH_OWNER, (ticket_id,)).fetchall()
        if not rows:
            return None
        ticket = _ticket(rows[0])
        standings = [Standing(contract=_contract(row), balance=row["balance"]) for row in rows]
        own = next((s for s in standings if s.contract.id == ticket.contract_id), None)
        if own is None:  # as for a code or key: a ticket whose contract is missing is not found
            return None
        return OwnedTicket(
            ticket=ticket,
            owner_kind=CallerKind(rows[0]["owner_kind"]),
            own=own,
            others=tuple(s for s in standings if s is not own),
        )

    def find_code(self, code: str) -> tuple[SupportCode, Contract, int | None] | None:
        """The support code the caller typed, with its contract and the contract's balance, in one read.

        The file holds only keyed hashes, so the typed code is hashed and looked up by its hash.
        """
        row = self._one(_WITH_CONTRACT.format(table="support_codes t", key="t.digest"), digest(self._pepper, code))
        return (SupportCode(code=code, contract_id=row["contract_id"]), _contract(row), row["balance"]) if row else None

    def find_key(self, key: str) -> tuple[LicenseKey, Contract, int | None] | None:
        """The license key the caller typed, with its contract and the contract's balance, in one read."""
        row = self._one(_WITH_CONTRACT.format(table="license_keys t", key="t.digest"), digest(self._pepper, key))
        if row is None:
            return None
        return (
            LicenseKey(key=key, product=row["product"], contract_id=row["contract_id"]),
            _contract(row),
            row["balance"],
        )

    def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        row = self._one("SELECT balance FROM balances WHERE contract_id = ?", contract_id)
        return row["balance"] if row else None

    def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``."""
        rows = self._db.execute(
            "SELECT at FROM auth_failures WHERE caller = ? AND at >= ? ORDER BY at", (caller, _utc(since))
        ).fetchall()
        return [datetime.fromisoformat(row[0]) for row in rows]

    # -- scans: on aiosqlite's thread ------------------------------------------------------------

    async def deductible_tickets(self) -> list[tuple[str, str, str]]:
        """(source, event id, ticket) of every ``ticket.created`` that asks the ledger to deduct."""
        rows = await self._scans.execute_fetchall(
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

    async def unsent(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """The oldest events after ``seq`` ``after`` not yet acknowledged by the broker, in order."""
        rows = await self._scans.execute_fetchall(
            "SELECT seq, topic, payload FROM outbox WHERE sent_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def outbox_end(self) -> int:
        """The ``seq`` of the newest outbox row (0 when empty): how far a relay must get to be drained."""
        rows = list(await self._scans.execute_fetchall("SELECT MAX(seq) FROM outbox"))
        return int(rows[0][0] or 0)

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Outbox rows the broker acknowledged."""
        await self._write(("UPDATE outbox SET sent_at = ? WHERE seq = ?", [(at, s) for s in seqs]))


#: A ticket's rows: one per contract of its owner (its own contract among them), with the balance
#: and the owner's kind. An owner holds a handful of contracts, found through contracts_customer.
_TICKET_WITH_OWNER: Final = (
    "SELECT t.*, o.kind AS owner_kind, c.id AS c_id, c.customer_id AS c_customer_id, c.plan, c.channels, "
    "c.incidents, c.valid_from, c.valid_until, c.hours, b.balance FROM tickets t "
    "JOIN customers o ON o.id = t.customer_id "
    "JOIN contracts c ON c.id = t.contract_id OR c.customer_id = t.customer_id "
    "JOIN balances b ON b.contract_id = c.id WHERE t.id = ?"
)
_WITH_CONTRACT: Final = (
    "SELECT t.*, c.id AS c_id, c.customer_id AS c_customer_id, c.plan, c.channels, c.incidents, c.valid_from, "
    "c.valid_until, c.hours, b.balance FROM {table} JOIN contracts c ON c.id = t.contract_id "
    "JOIN balances b ON b.contract_id = c.id WHERE {key} = ?"
)
#: What the pepper check value hashes: a known text, so a wrong pepper shows without any code.
_PEPPER_CHECK: Final = "ivr directory pepper"


def _file_pepper(db: sqlite3.Connection, given: bytes | None, path: Path | str) -> bytes:
    """The pepper for the file's codes and keys: ``given``, or the file's own, made on its first open.

    One transaction (IMMEDIATE: the write lock first), so two processes opening a new file at once
    agree on one pepper. A configured pepper is never written to the file, only its check value.
    """
    db.execute("BEGIN IMMEDIATE")
    with db:  # commits at the end, rolls back on an error
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        stored, check = meta.get("pepper"), meta.get("pepper_check")
        if given is None and stored is None and check is not None:
            msg = f"{path}: its codes and keys were hashed with a configured pepper: set {PEPPER_ENV} to it"
            raise PepperError(msg)
        pepper = given or stored or new_pepper()
        if check is None:
            rows = [("pepper_check", digest(pepper, _PEPPER_CHECK))]
            if given is None:
                rows.append(("pepper", pepper))
            db.executemany("INSERT INTO meta VALUES (?, ?)", rows)
        elif not hmac.compare_digest(check, digest(pepper, _PEPPER_CHECK)):
            msg = f"{path}: its codes and keys were hashed with another pepper than {PEPPER_ENV} gives"
            raise PepperError(msg)
    return pepper


def _utc(instant: datetime) -> str:
    """An instant as UTC ISO text: stored instants compare as text, so they share one offset."""
    return instant.astimezone(UTC).isoformat()


def _outbox(events: Iterable[CloudEvent]) -> _Statement:
    return (
        "INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)",
        [(e.id, e.topic, e.to_json()) for e in events],
    )


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        id=row["id"],
        customer_id=row["customer_id"],
        contract_id=row["contract_id"],
        status=TicketStatus(row["status"]),
        purpose=Purpose(row["purpose"]),
        severity=Severity(row["severity"]),
    )
