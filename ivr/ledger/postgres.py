"""The ledger's store in PostgreSQL, shared by every ledger process that names the same database.

A batch is one transaction. It first locks its contracts' rows (``FOR UPDATE``, in id order so
two ledgers never wait on each other in a circle), so another ledger deciding the same contracts
waits; it then reads which of its requests are known, decides in memory as SQLite's store does
(:func:`~ivr.ledger.storage.decide_batch`), inserts the new entries with ``ON CONFLICT DO
NOTHING`` on the idempotency keys (the event's source and id; the source and ticket), and takes
the deductions off with ``balance = balance - n WHERE balance >= n``, under a ``CHECK (balance >=
0)``. An entry that did not go in (another ledger inserted the same key meanwhile, under a
contract this batch had not locked) or a deduction the balance could not cover rolls the batch
back, and it is decided again from what is now committed; so is a deadlock the database broke.

Announcements are read as the directory's outbox is (:mod:`ivr.pg`): entries of ended
transactions, in (transaction id, sequence) order, so a relay's high-water mark skips none.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Final, Self

import asyncpg

from ivr.ledger.core import Outcome
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
from ivr.pg import FINISHED, finished_rows, open_pool, position, retrying, seq_numbers, unpack

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ivr.ledger.core import DeductionRequest

__all__ = ["PostgresLedgerStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS ledger_contracts (
    id TEXT PRIMARY KEY, opening INTEGER, balance INTEGER, CHECK (balance IS NULL OR balance >= 0));
CREATE TABLE IF NOT EXISTS ledger_entries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    key TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, call_id TEXT NOT NULL,
    contract_id TEXT NOT NULL, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
    balance_after INTEGER, applied_at TEXT NOT NULL, ledger TEXT NOT NULL, published_at TEXT, digest BYTEA,
    UNIQUE (source, ticket_id));
CREATE INDEX IF NOT EXISTS ledger_entries_order ON ledger_entries (xid, seq);
CREATE INDEX IF NOT EXISTS ledger_entries_seq ON ledger_entries (seq);
"""
_COLUMNS: Final = (
    "key, source, event_id, call_id, contract_id, ticket_id, outcome, reason, balance_after, applied_at, ledger, digest"
)
_INSERT: Final = (
    f"INSERT INTO ledger_entries ({_COLUMNS}) "  # noqa: S608 - constant text
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
    "$8::text[], $9::int[], $10::text[], $11::text[], $12::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING key"
)
_ANNOUNCED: Final = (
    "source, event_id, call_id, contract_id, ticket_id, outcome, reason, balance_after, applied_at, ledger"
)
#: ``$4``: the ledger whose entries are wanted, or NULL for every ledger's.
_UNSENT: Final = (
    f"SELECT xid::text, seq, {_ANNOUNCED} FROM ledger_entries "  # noqa: S608 - constant text
    f"WHERE published_at IS NULL AND {FINISHED} AND (xid, seq) > ($1::text::xid8, $2) "
    "AND ($4::text IS NULL OR ledger = $4) ORDER BY xid, seq LIMIT $3"
)
_WAITING: Final = (
    "SELECT EXISTS (SELECT FROM ledger_entries WHERE published_at IS NULL AND (xid, seq) > ($1::text::xid8, $2) "
    "AND ($3::text IS NULL OR ledger = $3))"
)
_ENTRIES: Final = (
    "SELECT applied_at, contract_id, ticket_id, outcome, reason, balance_after, source, event_id "
    "FROM ledger_entries {where} ORDER BY applied_at, seq"
)
_MARK_SENT: Final = "UPDATE ledger_entries SET published_at = $1 WHERE seq = ANY($2::bigint[])"
_BALANCES: Final = "SELECT id, opening, balance FROM ledger_contracts ORDER BY id"
_DEDUCTED: Final = (
    "SELECT contract_id, COUNT(*) AS n FROM ledger_entries WHERE outcome = 'deducted' GROUP BY contract_id"
)
#: Tries of one batch before its error is raised: each retry follows another ledger's commit.
_TRIES: Final = 20


class _RacedError(Exception):
    """Another ledger committed an entry this batch also decided: decide again."""


class PostgresLedgerStore:
    """Balances and entries in PostgreSQL (:class:`~ivr.ledger.storage.LedgerStorage`); see the module docstring."""

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - asyncpg's pool
        """Wrap the open pool; use :meth:`open`."""
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> Self:
        """Connect to ``dsn`` (in ``schema``, made if need be), making the tables on first use."""
        return cls(await open_pool(dsn, _SCHEMA, schema=schema, size=4))

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def load_opening(self, incidents: Mapping[str, int | None]) -> None:
        """Opening balances by contract (``None``: unlimited); contracts already known keep theirs."""
        await self._pool.executemany(
            "INSERT INTO ledger_contracts VALUES ($1, $2, $2) ON CONFLICT DO NOTHING", list(incidents.items())
        )

    async def apply(self, requests: Iterable[DeductionRequest], *, source: str, now: str) -> Applied:
        """Apply a batch in one transaction; the verdicts of what was new, in order, and the conflicts."""
        batch = list(requests)
        if not batch:
            return Applied()
        return await retrying(self._pool, lambda: self._apply(batch, source=source, now=now))

    async def _apply(self, batch: list[DeductionRequest], *, source: str, now: str) -> Applied:
        tried = 0
        async with self._pool.acquire() as conn:
            while True:
                tried += 1
                try:
                    async with conn.transaction():
                        return await _apply(conn, batch, source=source, now=now)
                except (_RacedError, asyncpg.DeadlockDetectedError, asyncpg.CheckViolationError):
                    if tried == _TRIES:
                        raise

    async def unsent(
        self, limit: int = 1000, *, after: int = 0, ledger: str | None = None
    ) -> list[tuple[int, str, str]]:
        """Announcements of entries not yet marked published, of ended transactions, after ``after``, in order.

        ``ledger``: only the entries it applied.
        """
        xid, seq = unpack(after)
        rows = await retrying(
            self._pool,
            lambda: finished_rows(self._pool, (_UNSENT, (xid, seq, limit, ledger)), (_WAITING, (xid, seq, ledger))),
        )
        return [
            (position(row["xid"], row["seq"]), announcement_topic(row["outcome"]), announcement(*tuple(row)[2:]))
            for row in rows
        ]

    async def mark_sent(self, rowids: Iterable[int], at: str) -> None:
        """The broker acknowledged these announcements (by position)."""
        seqs = seq_numbers(rowids)
        await retrying(self._pool, lambda: self._pool.execute(_MARK_SENT, at, seqs))

    async def balances(self) -> dict[str, tuple[int | None, int | None]]:
        """Every contract's (opening, balance); ``None`` is unlimited."""
        return {row["id"]: (row["opening"], row["balance"]) for row in await self._pool.fetch(_BALANCES)}

    async def history(self, contract_id: str) -> list[Entry]:
        """A contract's entries, oldest first."""
        rows = await self._pool.fetch(_ENTRIES.format(where="WHERE contract_id = $1"), contract_id)
        return [Entry(*row) for row in rows]

    async def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        return [Entry(*row) for row in await self._pool.fetch(_ENTRIES.format(where=""))]

    async def deducted(self) -> dict[str, int]:
        """Incidents deducted so far, by contract."""
        return {row["contract_id"]: row["n"] for row in await self._pool.fetch(_DEDUCTED)}

    async def verify(self, expected: Iterable[tuple[str, str]] | None = None) -> VerifyReport:
        """Opening minus deductions equal the balances, none below zero; each expected ticket applied once.

        One repeatable-read transaction: ledgers applying meanwhile cannot show a false mismatch.
        """
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            balances = {row["id"]: (row["opening"], row["balance"]) for row in await conn.fetch(_BALANCES)}
            deducted = {row["contract_id"]: row["n"] for row in await conn.fetch(_DEDUCTED)}
            entries = await conn.fetch("SELECT source, ticket_id, outcome FROM ledger_entries")
        applied = {(row["source"], row["ticket_id"]): row["outcome"] for row in entries}
        return verify_report(balances, deducted, applied, expected)


async def _apply(conn: Any, batch: list[DeductionRequest], *, source: str, now: str) -> Applied:  # noqa: ANN401
    contracts = sorted({r.contract_id for r in batch})
    rows = await conn.fetch(
        "SELECT id, balance FROM ledger_contracts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", contracts
    )
    balances: dict[str, int | None] = {row["id"]: row["balance"] for row in rows}
    known = set(balances)
    existing = await conn.fetch(
        "SELECT key, source, ticket_id, digest FROM ledger_entries WHERE key = ANY($1::text[]) "
        "UNION SELECT key, source, ticket_id, digest FROM ledger_entries "
        "WHERE (source, ticket_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        [r.key for r in batch],
        [r.source for r in batch],
        [r.ticket_id for r in batch],
    )
    digests = {row["key"]: (bytes(row["digest"]) if row["digest"] is not None else None) for row in existing}
    tickets = {(row["source"], row["ticket_id"]) for row in existing}
    applied = decide_batch(batch, balances, known, digests, tickets)
    if not applied.verdicts:
        return applied
    columns = [list(column) for column in zip(*(entry_row(v, now, source) for v in applied.verdicts), strict=True)]
    inserted = await conn.fetch(_INSERT, *columns)
    if len(inserted) != len(applied.verdicts):
        raise _RacedError
    used = list(Counter(v.request.contract_id for v in applied.verdicts if v.outcome is Outcome.DEDUCTED).items())
    if used:
        done = await conn.fetch(
            "UPDATE ledger_contracts AS c SET balance = c.balance - u.n "
            "FROM unnest($1::text[], $2::int[]) AS u(id, n) WHERE c.id = u.id AND c.balance >= u.n RETURNING c.id",
            [c for c, _ in used],
            [n for _, n in used],
        )
        if len(done) != len(used):
            raise _RacedError
    return applied
