"""The ledger's SQLite file: balances, one entry per deduction request, and its own outbox.

One writer task owns a store (the ledger is a single consumer), and applies requests in batches:
a commit costs far more than a row, so a batch is decided in memory and committed at once. An entry is keyed by the
triggering event's ``source`` + ``id``, and a ticket can hold one deduction at most, so a
redelivered or re-sent event finds its entry and changes nothing; an event under the same key with
other bytes (a forgery, or a publisher that reuses ids) changes nothing either, and is reported as
a conflict (:class:`Applied`), for the ledger to dead-letter. The entry also holds everything
the ledger event that announces it is made of (the request, the verdict, the ledger's name, the
time), so a crash between commit and publish is repaired by publishing, on restart, what was not
yet published: marked on the entry when the ledger announces in its own process, or one
high-water mark in the file of `ivr ledger relay` when that process announces.

The announcement is built when it is read to be published (:data:`UNSENT`, by SQL functions of
:data:`ANNOUNCEMENT_FUNCTIONS`), not stored with the entry: making and writing its JSON inside the
batch's transaction lengthened the hold on the file's write lock, which two ledgers on one file
take turns at (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Self, TypeGuard, TypeVar

from ivr.ledger.core import DeductionRequest
from ivr.ledger.storage import (
    Applied,
    Entry,
    VerifyReport,
    announcement,
    announcement_topic,
    decide_batch,
    entry_row,
    verify_report,
)
from ivr.transaction import immediate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

__all__ = ["ANNOUNCEMENT_FUNCTIONS", "UNSENT", "LedgerFileError", "SqliteLedgerStore"]

T = TypeVar("T")

_ENTRIES: Final = """
CREATE TABLE IF NOT EXISTS {name} (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, call_id TEXT NOT NULL,
    contract_id TEXT NOT NULL, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
    balance_after INTEGER, applied_at TEXT NOT NULL, ledger TEXT NOT NULL, published_at TEXT, digest BLOB);
"""

_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS contracts (
    id TEXT PRIMARY KEY, opening INTEGER, balance INTEGER,
    CHECK (balance IS NULL OR balance >= 0));
"""
    + _ENTRIES.format(name="entries")
    + """
CREATE UNIQUE INDEX IF NOT EXISTS entries_ticket ON entries (source, ticket_id);
-- entries_contract (contract_id, applied_at), made by older files: no query uses it, and every
-- insert paid for it under the write lock.
DROP INDEX IF EXISTS entries_contract;
-- entries_unpublished (applied_at) WHERE published_at IS NULL, made by older files: the announcer
-- reads in rowid order after its place (UNSENT), which no plan serves from it; every insert and
-- every mark paid for it.
DROP INDEX IF EXISTS entries_unpublished;
"""
)

#: Files of the older shape keep each entry's announcement whole, in ``event``: the entries move
#: to a table of today's shape, rowids kept (a relay's high-water mark is one), the ledger's name
#: taken from the stored announcement. One transaction: a crash leaves the old table as it was.
_MIGRATE_EVENT_COLUMN: Final = (
    _ENTRIES.format(name="entries_new")  # noqa: S608 - constant text: no value is interpolated
    + """
INSERT INTO entries_new (rowid, key, source, event_id, call_id, contract_id, ticket_id, outcome, reason,
                         balance_after, applied_at, ledger, published_at)
    SELECT rowid, key, source, event_id, call_id, contract_id, ticket_id, outcome, reason, balance_after,
           applied_at, json_extract(event, '$.source'), published_at
    FROM entries ORDER BY rowid;
DROP TABLE entries;
ALTER TABLE entries_new RENAME TO entries;
"""
)


#: The SQL functions :data:`UNSENT` calls, ``(name, arguments, function)``: registered on every
#: connection that reads it, the store's own and `ivr ledger relay`'s.
ANNOUNCEMENT_FUNCTIONS: Final[tuple[tuple[str, int, Callable[..., str]], ...]] = (
    ("announcement_topic", 1, announcement_topic),
    ("announcement", 10, announcement),
)

#: The ledger events to announce, in commit order (rowid: entries are only ever inserted, one
#: writer at a time), with their topics, built from the entries' columns. ``{after}`` says which:
#: not yet marked published here, or after a relay's high-water mark (`ivr ledger relay`).
UNSENT: Final = (
    "SELECT rowid, announcement_topic(outcome), announcement(source, event_id, call_id, contract_id, ticket_id, "
    "outcome, reason, balance_after, applied_at, ledger) FROM entries WHERE {after} ORDER BY rowid LIMIT ?"
)

_INSERT: Final = (
    "INSERT INTO entries (key, source, event_id, call_id, contract_id, ticket_id, outcome, reason, balance_after, "
    "applied_at, ledger, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OPENING: Final = "INSERT OR IGNORE INTO contracts VALUES (?, ?, ?)"
_MARK_SENT: Final = "UPDATE entries SET published_at = ? WHERE rowid = ?"
_BALANCES: Final = "SELECT id, opening, balance FROM contracts ORDER BY id"
_DEDUCTED: Final = "SELECT contract_id, COUNT(*) FROM entries WHERE outcome = 'deducted' GROUP BY contract_id"


#: SQLite's primary result codes that say the file itself cannot be used: read-only, a disk full
#: or failing, a file that cannot be opened or is no database. Retrying does not help; a person must.
_UNUSABLE: Final = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)


class LedgerFileError(RuntimeError):
    """The ledger's file cannot be opened or written: what was being done was not, and nothing was half-done."""

    def __init__(self, path: Path | str, error: sqlite3.Error) -> None:
        """Name the file and SQLite's own words."""
        super().__init__(f"the ledger file {path} cannot be used: {error}")
        self.path = path


def _unusable(error: BaseException) -> TypeGuard[sqlite3.Error]:
    """Whether ``error`` says the file cannot be used (not a lock to wait out, nor a bug of ours)."""
    return isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _UNUSABLE


class SqliteLedgerStore:
    """Balances and entries in one SQLite file (:class:`~ivr.ledger.storage.LedgerStorage`); see the module docstring.

    The connection has a thread of its own for the long waits: the write lock (another ledger's
    commit), each commit's sync, and the reads of the other methods. Every write transaction's
    work (a batch's reading, deciding and writing) runs on the loop's thread between its BEGIN and
    its COMMIT, as the directory's writes do: sqlite3 gives the GIL up around every row, and a
    thread taking it back from a busy loop waits for it each time, so the write lock would be held
    far longer than its SQL takes (docs/performance.md). One lock makes every call run
    alone and in order, so the announcer's commit never lands inside a batch's transaction nor its
    read sees half of one. A cancelled caller does not stop a BEGIN or a COMMIT under way: the
    transaction ends whole, committed or rolled back.
    """

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor, path: Path | str) -> None:
        """Wrap a connection to ``path`` opened on ``thread``; use :meth:`open`."""
        self._conn = conn
        self._thread = thread
        self._path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        """Open (creating if need be) the ledger at ``path``; :class:`LedgerFileError` if it cannot be used."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-store")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(thread, _connect, str(path))
        except BaseException as exc:
            thread.shutdown(wait=False)
            if _unusable(exc):
                raise LedgerFileError(path, exc) from exc
            raise
        return cls(conn, thread, path)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:  # noqa: ANN401 - passed through to ``fn``
        """``fn(*args)`` on the store's thread, alone (see :meth:`_write`)."""
        async with self._lock:
            return await self._run(fn, *args)

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:  # noqa: ANN401 - passed through to ``fn``
        """``fn(*args)`` on the store's thread, as a future."""
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def close(self) -> None:
        """Close the connection and end its thread."""
        await self._call(self._conn.close)
        self._thread.shutdown(wait=True)

    async def load_opening(self, incidents: Mapping[str, int | None]) -> None:
        """Opening balances by contract (``None``: unlimited); contracts already known keep theirs."""
        rows = [(c, n, n) for c, n in incidents.items()]
        await self._write(lambda: self._conn.executemany(_OPENING, rows))

    async def apply(self, requests: Iterable[DeductionRequest], *, source: str, now: str) -> Applied:
        """Apply a batch in one transaction; return the verdicts of what was new, in order, and the conflicts.

        A request whose key, or whose ticket, already has an entry is a duplicate: no change, no
        verdict; if its key's entry was made from another event (digest), it is a conflict too.
        Requests racing for a contract's last incident are decided in arrival order, so the first
        is deducted and the others rejected. ``source`` names this ledger in the events that will
        announce the verdicts, ``now`` is when it applied them.
        """
        batch = list(requests)
        if not batch:
            return Applied()
        return await self._write(lambda: self._apply_locked(batch, source=source, now=now))

    async def _write(self, work: Callable[[], T]) -> T:
        """``work()`` in one write transaction; anything that fails rolls back.

        Waiting for the write lock (another ledger's commit) and the commit's sync are the long
        waits: on the store's thread, each seen through to its end even if the caller is cancelled
        meanwhile. ``work`` (reading, deciding, writing) runs here, on the loop's thread. The write
        lock is taken before reading: two ledgers on one file must not both read the last incident
        as available. A file that cannot be written (read-only, disk full) raises :class:`LedgerFileError`.
        """
        async with self._lock:
            try:
                await _whole(self._run(self._conn.execute, "BEGIN IMMEDIATE"))
                done = work()
                await _whole(self._run(self._conn.execute, "COMMIT"))
            except BaseException as exc:
                await _whole(self._run(self._rollback))
                if _unusable(exc):
                    raise LedgerFileError(self._path, exc) from exc
                raise
        return done

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _apply_locked(self, batch: list[DeductionRequest], *, source: str, now: str) -> Applied:
        balances, known = self._balances_for({r.contract_id for r in batch})
        digests, tickets = self._existing(batch)
        applied = decide_batch(batch, balances, known, digests, tickets)
        self._conn.executemany(_INSERT, [entry_row(v, now, source) for v in applied.verdicts])
        self._conn.executemany(
            "UPDATE contracts SET balance = ? WHERE id = ?",
            [(b, c) for c, b in balances.items() if c in known],
        )
        return applied

    def _balances_for(self, contracts: set[str]) -> tuple[dict[str, int | None], set[str]]:
        marks = ",".join("?" * len(contracts))
        rows = self._conn.execute(
            f"SELECT id, balance FROM contracts WHERE id IN ({marks})",  # noqa: S608 - only "?" marks are interpolated
            tuple(contracts),
        ).fetchall()
        return {row[0]: row[1] for row in rows}, {row[0] for row in rows}

    def _existing(self, batch: list[DeductionRequest]) -> tuple[dict[str, bytes | None], set[tuple[str, str]]]:
        """The batch's keys already in the file, with their digests, and its (source, ticket) pairs: one read."""
        keys = [r.key for r in batch]
        sources = sorted({r.source for r in batch})
        tickets = sorted({r.ticket_id for r in batch})
        # Two indexed lookups in a UNION (an OR of them scans the whole, ever-growing table). The
        # second may return pairs of the cross product: each is a real entry, marking only itself.
        marks = ",".join
        rows = self._conn.execute(
            f"SELECT key, source, ticket_id, digest FROM entries WHERE key IN ({marks('?' * len(keys))}) "  # noqa: S608 - only "?" marks are interpolated
            "UNION SELECT key, source, ticket_id, digest FROM entries "
            f"WHERE source IN ({marks('?' * len(sources))}) AND ticket_id IN ({marks('?' * len(tickets))})",
            (*keys, *sources, *tickets),
        ).fetchall()
        digests: dict[str, bytes | None] = {}
        pairs: set[tuple[str, str]] = set()
        for key, source, ticket, digest in rows:
            digests[key] = digest
            pairs.add((source, ticket))
        return digests, pairs

    async def unsent(
        self, limit: int = 1000, *, after: int = 0, ledger: str | None = None
    ) -> list[tuple[int, str, str]]:
        """Ledger events after entry ``after`` not yet acknowledged by the broker, oldest first: (rowid, topic, JSON).

        The store is the :class:`~ivr.bus.publisher.Outbox` of the ledger's own announcer (when
        it announces in its process); the rowid is the order of commits. ``ledger``: only the
        entries it applied.
        """
        if ledger is None:
            rows = await self._read(UNSENT.format(after="published_at IS NULL AND rowid > ?"), (after, limit))
        else:
            where = "published_at IS NULL AND rowid > ? AND ledger = ?"
            rows = await self._read(UNSENT.format(after=where), (after, ledger, limit))
        return [(row[0], row[1], row[2]) for row in rows]

    async def mark_sent(self, rowids: Iterable[int], at: str) -> None:
        """The broker acknowledged these ledger events."""
        rows = [(at, r) for r in rowids]
        await self._write(lambda: self._conn.executemany(_MARK_SENT, rows))

    async def entries_end(self) -> int:
        """The rowid of the newest entry (0 when none): how far a relay must get to have announced all."""
        rows = await self._read("SELECT MAX(rowid) FROM entries")
        return int(rows[0][0] or 0)

    async def balances(self) -> dict[str, tuple[int | None, int | None]]:
        """Every contract's (opening, balance); ``None`` is unlimited."""
        return {row[0]: (row[1], row[2]) for row in await self._read(_BALANCES)}

    async def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        """One statement's rows, read on the store's thread between transactions."""
        return await self._call(lambda: self._conn.execute(sql, parameters).fetchall())

    async def history(self, contract_id: str) -> list[Entry]:
        """A contract's entries, oldest first."""
        return [e for e in await self.entries() if e.contract_id == contract_id]

    async def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        rows = await self._read(
            "SELECT applied_at, contract_id, ticket_id, outcome, reason, balance_after, source, event_id "
            "FROM entries ORDER BY applied_at, rowid"
        )
        return [Entry(*row) for row in rows]

    async def deducted(self) -> dict[str, int]:
        """Incidents deducted so far, by contract."""
        return {row[0]: row[1] for row in await self._read(_DEDUCTED)}

    async def verify(self, expected: Iterable[tuple[str, str]] | None = None) -> VerifyReport:
        """Check that opening balances minus deductions equal today's balances, none below zero.

        Given ``expected`` (source, ticket) pairs of every deductible ticket, also check that each
        was applied exactly once.
        """
        # One read transaction: a ledger applying batches meanwhile cannot show a false mismatch.
        balances, deducted, entries = await self._call(self._snapshot)
        applied = {(row[0], row[1]): row[2] for row in entries}
        return verify_report(balances, deducted, applied, expected)

    def _snapshot(self) -> tuple[dict[str, tuple[int | None, int | None]], dict[str, int], list[Any]]:
        """Balances, deductions by contract and every entry's (source, ticket, outcome), in one read transaction."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            balances = {r[0]: (r[1], r[2]) for r in conn.execute(_BALANCES)}
            deducted = {r[0]: r[1] for r in conn.execute(_DEDUCTED)}
            entries = conn.execute("SELECT source, ticket_id, outcome FROM entries").fetchall()
        finally:
            conn.execute("COMMIT")
        return balances, deducted, entries


async def _whole(done: asyncio.Future[T]) -> T:
    """Await ``done`` to its end, even if cancelled meanwhile (then the cancellation is raised after)."""
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await done
        raise


def _connect(path: str) -> sqlite3.Connection:
    """The store's connection, made on its thread: WAL, a sync per commit, the schema, the announcement's functions."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for name, arguments, function in ANNOUNCEMENT_FUNCTIONS:
            conn.create_function(name, arguments, function, deterministic=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a deduction acked to the broker must survive a crash
        _migrate(conn)
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a file of an earlier shape to today's; a new file is left to the schema.

    The older shape (:data:`_MIGRATE_EVENT_COLUMN`), or without the digests of the events applied:
    their entries stay without one, and a repeat of one is never taken for a conflict.
    """
    with immediate(conn):  # two ledgers opening one old file: the second finds it migrated
        columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
        if "event" in columns:
            for statement in _MIGRATE_EVENT_COLUMN.split(";"):
                if statement.strip():
                    conn.execute(statement)
        elif columns and "digest" not in columns:
            conn.execute("ALTER TABLE entries ADD COLUMN digest BLOB")
