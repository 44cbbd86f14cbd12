"""The directory in SQLite: lookups and writes on the event loop's thread, scans on aiosqlite's.

The IVR's own SQL is small and indexed: a lookup (a ticket, code or key with its contract; a
caller's recent failures) is one short read, and a group commit a few inserts. A hop to another
thread per statement costs many times that, and with thousands of live calls the hops queue and
each row of an ``executemany`` waits for the GIL while the loop holds it (docs/performance.md).
So one ``sqlite3`` connection serves both, on the loop's thread:

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
import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Self

import aiosqlite
import structlog

from ivr.directory.rows import (
    FIRST_NEW_TICKET,
    TICKET_WITH_OWNER,
    WITH_CONTRACT,
    balances_taken,
    code_found,
    contract_rows,
    deductible,
    key_found,
    outbox_rows,
    owned_ticket,
    settle_pepper,
    ticket_row,
    utc,
)
from ivr.secrets import digest

if TYPE_CHECKING:
    from collections.abc import Iterable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from ivr.auth.model import Contract, LicenseKey, OwnedTicket, SupportCode, Ticket
    from ivr.directory.fixtures import World
    from ivr.directory.storage import OutboxRow
    from ivr.events import CloudEvent

__all__ = ["CHECKPOINT_EVERY", "SqliteDirectory"]

log = structlog.get_logger("ivr.directory")

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
-- No unique index on event_id (older files have one): the ids are random UUIDs, so each row
-- goes into a random page of such an index, and each group commit writes those pages to the WAL
-- again (docs/performance.md). Each event is written once, by the call that made it; its
-- consumers deduplicate by id in any case.
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, topic TEXT NOT NULL,
    payload TEXT NOT NULL, sent_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
"""


_Statement = tuple[str, list[tuple[Any, ...]]]  # SQL, rows for executemany

#: A ledger event's balance, unless the contract's stands as of a later one: (balance, as of, contract).
_TAKE_BALANCE: Final = (
    "UPDATE balances SET balance = ?1, as_of = ?2 "
    "WHERE contract_id = ?3 AND balance IS NOT NULL AND (as_of IS NULL OR as_of <= ?2)"
)


@dataclass(slots=True)
class _Job:
    """Statements to commit together, and the future resolved once they are committed."""

    statements: list[_Statement]
    done: asyncio.Future[None]


class SqliteDirectory:
    """The IVR's SQLite database (:class:`~ivr.directory.storage.DirectoryStorage`), one IVR process's own."""

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
        updates rows committed earlier), or are guarded by ``as_of`` (``take_ledger_events``).
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
        rows = contract_rows(world, self._pepper)
        await self._write(
            ("INSERT INTO customers VALUES (?, ?, ?)", rows["customers"]),
            ("INSERT INTO caller_numbers VALUES (?, ?)", rows["caller_numbers"]),
            ("INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows["contracts"]),
            ("INSERT INTO balances VALUES (?, ?, NULL)", rows["balances"]),
            ("INSERT INTO support_codes VALUES (?, ?, ?)", rows["support_codes"]),
            ("INSERT INTO license_keys VALUES (?, ?, ?, ?)", rows["license_keys"]),
            ("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)", rows["tickets"]),
        )

    # -- lookups: one indexed read each, on the loop's thread ---------------------------------

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:  # noqa: ANN401 - SQL parameters
        # fetchall, not fetchone: the statement runs to its end and resets, so the connection
        # holds no read snapshot between lookups (it would hide later commits from it).
        rows: list[sqlite3.Row] = self._db.execute(sql, args).fetchall()
        return rows

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:  # noqa: ANN401 - SQL parameters
        rows = self._all(sql, *args)
        return rows[0] if rows else None

    async def find_ticket(self, ticket_id: str) -> OwnedTicket | None:
        """A ticket with its contract, its owner's kind and the owner's other contracts, with balances, in one read."""
        return owned_ticket(self._all(_TICKET_WITH_OWNER, ticket_id))

    async def find_code(self, code: str) -> tuple[SupportCode, Contract, int | None] | None:
        """The support code the caller typed, with its contract and the contract's balance, in one read.

        The file holds only keyed hashes, so the typed code is hashed and looked up by its hash.
        """
        return code_found(code, self._one(_CODE, digest(self._pepper, code)))

    async def find_key(self, key: str) -> tuple[LicenseKey, Contract, int | None] | None:
        """The license key the caller typed, with its contract and the contract's balance, in one read."""
        return key_found(key, self._one(_KEY, digest(self._pepper, key)))

    async def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        row = self._one("SELECT balance FROM balances WHERE contract_id = ?", contract_id)
        return row["balance"] if row else None

    async def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``."""
        rows = self._all("SELECT at FROM auth_failures WHERE caller = ? AND at >= ? ORDER BY at", caller, utc(since))
        return [datetime.fromisoformat(row[0]) for row in rows]

    def caller_lock(self, caller: str) -> AbstractAsyncContextManager[None]:  # noqa: ARG002 - one process per file
        """Nothing to hold: the file has one IVR process, whose engine already serializes a number's calls."""
        return contextlib.nullcontext()

    # -- scans: on aiosqlite's thread ------------------------------------------------------------

    async def deductible_tickets(self) -> list[tuple[str, str, str]]:
        """(source, event id, ticket) of every ``ticket.created`` that asks the ledger to deduct."""
        rows = await self._scans.execute_fetchall(
            "SELECT payload FROM outbox WHERE topic LIKE '%/ticket/created/%' ORDER BY seq"
        )
        return deductible(row[0] for row in rows)

    # -- writes: through the group-commit writer -----------------------------------------------

    async def next_ticket_id(self) -> str:
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
        await self._write(("INSERT INTO auth_failures VALUES (?, ?)", [(caller, utc(at))]), _outbox(events))

    async def create_ticket(self, ticket: Ticket, *, call_id: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A new ticket and its events, in one transaction."""
        row = ticket_row(ticket, call_id, at)
        await self._write(("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [row]), _outbox(events))

    async def add_events(self, events: Iterable[CloudEvent]) -> None:
        """Events with no other write to go with them."""
        await self._write(_outbox(events))

    async def take_ledger_events(self, events: Iterable[CloudEvent]) -> None:
        """Take the ledger's word for contracts' balances, so "incidents available" sees deductions.

        Ledger events may arrive late or twice; ``as_of`` keeps an older event from undoing a newer,
        within one write as across writes.
        """
        rows = balances_taken(events)
        if rows:
            await self._write((_TAKE_BALANCE, rows))

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


_TICKET_WITH_OWNER: Final = TICKET_WITH_OWNER.format(p="?")
_CODE: Final = WITH_CONTRACT.format(table="support_codes", p="?")
_KEY: Final = WITH_CONTRACT.format(table="license_keys", p="?")


def _file_pepper(db: sqlite3.Connection, given: bytes | None, path: Path | str) -> bytes:
    """The pepper for the file's codes and keys (:func:`~ivr.directory.rows.settle_pepper`).

    One transaction (IMMEDIATE: the write lock first), so two processes opening a new file at once
    agree on one pepper.
    """
    db.execute("BEGIN IMMEDIATE")
    with db:  # commits at the end, rolls back on an error
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        pepper, rows = settle_pepper(meta.get("pepper"), meta.get("pepper_check"), given, str(path))
        db.executemany("INSERT INTO meta VALUES (?, ?)", rows)
    return pepper


def _outbox(events: Iterable[CloudEvent]) -> _Statement:
    return ("INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)", outbox_rows(events))
