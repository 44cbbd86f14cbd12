"""The ledger's SQLite file: balances, one entry per deduction request, and its own outbox.

One writer task owns a store (the ledger is a single consumer), and applies requests in batches:
the measured cost here is ~2,800 commits/s one row at a time against ~78,000 rows/s at 100 rows
per transaction, so a batch is decided in memory and committed at once. An entry is keyed by the
triggering event's ``source`` + ``id``, and a ticket can hold one deduction at most, so a
redelivered or re-sent event finds its entry and changes nothing. The entry also keeps the ledger
event that announces it, so a crash between commit and publish is repaired by publishing, on
restart, what was not yet published: marked on the entry when the ledger announces in its own
process, or one high-water mark in the file of `ivr ledger relay` when that process announces.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from ivr.events import topic_for
from ivr.ledger.core import DeductionRequest, Outcome, Verdict, decide, ledger_event, ledger_event_id

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    from ivr.events import CloudEvent

__all__ = ["UNSENT", "Entry", "LedgerStore", "VerifyReport"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS contracts (
    id TEXT PRIMARY KEY, opening INTEGER, balance INTEGER,
    CHECK (balance IS NULL OR balance >= 0));
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, call_id TEXT NOT NULL,
    contract_id TEXT NOT NULL, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
    balance_after INTEGER, applied_at TEXT NOT NULL, event TEXT NOT NULL, published_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS entries_ticket ON entries (source, ticket_id);
-- entries_contract (contract_id, applied_at), made until round 5: no query used it, and every
-- insert paid for it under the write lock.
DROP INDEX IF EXISTS entries_contract;
CREATE INDEX IF NOT EXISTS entries_unpublished ON entries (applied_at) WHERE published_at IS NULL;
"""


#: The ledger events to announce, in commit order (rowid: entries are only ever inserted, one
#: writer at a time), with their topics. ``{after}`` says which: not yet marked published here, or
#: after a relay's high-water mark (`ivr ledger relay`). ``topic_for`` is
#: :func:`ivr.events.topic_for`, registered on each connection that reads this.
UNSENT: Final = (
    "SELECT rowid, topic_for(json_extract(event, '$.type')), event FROM entries WHERE {after} ORDER BY rowid LIMIT ?"
)

_INSERT: Final = (
    "INSERT INTO entries (key, source, event_id, call_id, contract_id, ticket_id, outcome, reason, balance_after, "
    "applied_at, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OPENING: Final = "INSERT OR IGNORE INTO contracts VALUES (?, ?, ?)"
_MARK_SENT: Final = "UPDATE entries SET published_at = ? WHERE rowid = ?"
_BALANCES: Final = "SELECT id, opening, balance FROM contracts ORDER BY id"
_DEDUCTED: Final = "SELECT contract_id, COUNT(*) FROM entries WHERE outcome = 'deducted' GROUP BY contract_id"


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


class LedgerStore:
    """Balances and entries in one SQLite file; see the module docstring for the guarantees.

    The connection has a thread of its own for the long waits: the write lock (another ledger's
    commit), each commit's sync, and the reads of the other methods. Every write transaction's
    work (a batch's reading, deciding and writing) runs on the loop's thread between its BEGIN and
    its COMMIT, as the directory's writes do: sqlite3 gives the GIL up around every row, and a
    thread taking it back from a busy loop waits for it each time. With aiosqlite a batch was eight hops, each
    waiting for the loop to finish whatever it was doing: the write lock was held ~85 µs a
    deduction for ~40 µs of SQL (docs/performance.md, round 5). One lock makes every call run
    alone and in order, so the announcer's commit never lands inside a batch's transaction nor its
    read sees half of one. A cancelled caller does not stop a BEGIN or a COMMIT under way: the
    transaction ends whole, committed or rolled back.
    """

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        """Wrap a connection opened on ``thread``; use :meth:`open`."""
        self._conn = conn
        self._thread = thread
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        """Open (creating if need be) the ledger at ``path``."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-store")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(thread, _connect, str(path))
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(conn, thread)

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

    async def apply(self, requests: Iterable[DeductionRequest], *, source: str, now: str) -> list[CloudEvent]:
        """Apply a batch in one transaction; return the ledger events of what was new.

        A request whose key, or whose ticket, already has an entry is a duplicate: no change, no
        event. Requests racing for a contract's last incident are decided in arrival order, so the
        first is deducted and the others rejected.
        """
        batch = list(requests)
        if not batch:
            return []
        ids = [ledger_event_id(r) for r in batch]  # before the write lock: see ledger_event
        return await self._write(lambda: self._apply_locked(batch, ids, source=source, now=now))

    async def _write(self, work: Callable[[], T]) -> T:
        """``work()`` in one write transaction; anything that fails rolls back.

        Waiting for the write lock (another ledger's commit) and the commit's sync are the long
        waits: on the store's thread, each seen through to its end even if the caller is cancelled
        meanwhile. ``work`` (reading, deciding, writing) runs here, on the loop's thread. The write
        lock is taken before reading: two ledgers on one file must not both read the last incident
        as available.
        """
        async with self._lock:
            try:
                await _whole(self._run(self._conn.execute, "BEGIN IMMEDIATE"))
                done = work()
                await _whole(self._run(self._conn.execute, "COMMIT"))
            except BaseException:
                await _whole(self._run(self._rollback))
                raise
        return done

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _apply_locked(
        self, batch: list[DeductionRequest], ids: list[str], *, source: str, now: str
    ) -> list[CloudEvent]:
        balances, known = self._balances_for({r.contract_id for r in batch})
        seen = self._existing(batch)
        rows: list[tuple[Any, ...]] = []
        events: list[CloudEvent] = []
        for request, event_id in zip(batch, ids, strict=True):
            key, ticket = request.key, (request.source, request.ticket_id)
            if key in seen or ticket in seen:
                continue
            seen.add(key)
            seen.add(ticket)
            verdict = decide(request, balances.get(request.contract_id), known=request.contract_id in known)
            if verdict.outcome is Outcome.DEDUCTED:
                balances[request.contract_id] = verdict.balance_after
            event = ledger_event(verdict, event_id=event_id, source=source, time=now)
            events.append(event)
            rows.append(_entry_row(verdict, now, event))
        self._conn.executemany(_INSERT, rows)
        self._conn.executemany(
            "UPDATE contracts SET balance = ? WHERE id = ?",
            [(b, c) for c, b in balances.items() if c in known],
        )
        return events

    def _balances_for(self, contracts: set[str]) -> tuple[dict[str, int | None], set[str]]:
        marks = ",".join("?" * len(contracts))
        rows = self._conn.execute(
            f"SELECT id, balance FROM contracts WHERE id IN ({marks})",  # noqa: S608 - only "?" marks are interpolated
            tuple(contracts),
        ).fetchall()
        return {row[0]: row[1] for row in rows}, {row[0] for row in rows}

    def _existing(self, batch: list[DeductionRequest]) -> set[Any]:
        """Keys and (source, ticket) pairs of the batch already in the file: one read for the batch."""
        keys = [r.key for r in batch]
        sources = sorted({r.source for r in batch})
        tickets = sorted({r.ticket_id for r in batch})
        # Two indexed lookups in a UNION (an OR of them scans the whole, ever-growing table). The
        # second may return pairs of the cross product: each is a real entry, marking only itself.
        marks = ",".join
        rows = self._conn.execute(
            f"SELECT key, source, ticket_id FROM entries WHERE key IN ({marks('?' * len(keys))}) "  # noqa: S608 - only "?" marks are interpolated
            "UNION SELECT key, source, ticket_id FROM entries "
            f"WHERE source IN ({marks('?' * len(sources))}) AND ticket_id IN ({marks('?' * len(tickets))})",
            (*keys, *sources, *tickets),
        ).fetchall()
        seen: set[Any] = set()
        for key, source, ticket in rows:
            seen.update({key, (source, ticket)})
        return seen

    async def unsent(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """Ledger events committed but not yet acknowledged by the broker, oldest first: (rowid, topic, JSON).

        The store is the :class:`~ivr.bus.publisher.Outbox` of the ledger's own announcer (when
        it announces in its process); the rowid is the order of commits.
        """
        rows = await self._read(UNSENT.format(after="published_at IS NULL"), (limit,))
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
        applied = {(row[0], row[1]): row[2] for row in entries}
        report.rejections = sum(1 for o in applied.values() if o == Outcome.REJECTED)
        for source, ticket in expected or ():
            if (source, ticket) not in applied:
                report.problems.append(f"ticket {ticket} from {source}: deductible, never applied")
        return report

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
    """The store's connection, made on its thread: WAL, a sync per commit, the schema, ``topic_for``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.create_function("topic_for", 1, topic_for, deterministic=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a deduction acked to the broker must survive a crash
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _entry_row(verdict: Verdict, now: str, event: CloudEvent) -> tuple[Any, ...]:
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
        event.to_json(),
    )
