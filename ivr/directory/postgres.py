"""The directory in PostgreSQL, shared by every IVR process that names the same database (and schema).

What must hold across those processes is decided by the database, not by any one of them:

- ticket IDs come from one sequence, ``ticket_ids``, whoever creates the ticket;
- a number's failures are rows every process reads, and its calls authorize one at a time across
  processes: :meth:`PostgresDirectory.caller_lock` holds a transaction-scoped advisory lock keyed
  on the number (and the schema) from before the lockout is read until the failure is committed;
- the outbox is read in (transaction id, sequence) order, only rows whose transaction has ended
  for every reader (:mod:`ivr.pg`), so a publisher's high-water mark never skips a row whose
  transaction committed late.

Codes and keys are HMAC digests under the configured pepper, or the one the schema made for
itself and keeps in ``meta``, as in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Self

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
)
from ivr.pg import (
    CONNECTION_LOST,
    FINISHED,
    committed,
    connect_pool,
    ensure_schema,
    finished_rows,
    open_pool,
    position,
    retrying,
    seq_numbers,
    unpack,
)
from ivr.secrets import digest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from ivr.auth.model import Contract, LicenseKey, OwnedTicket, SupportCode, Ticket
    from ivr.directory.fixtures import World
    from ivr.directory.storage import OutboxRow
    from ivr.events import CloudEvent

__all__ = ["PostgresDirectory", "PostgresOutbox"]

log = structlog.get_logger("ivr.directory.postgres")

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS caller_numbers (
    number TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id));
CREATE TABLE IF NOT EXISTS contracts (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), plan TEXT NOT NULL,
    channels TEXT NOT NULL, incidents INTEGER, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL,
    hours TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contracts_customer ON contracts (customer_id);
CREATE TABLE IF NOT EXISTS balances (
    contract_id TEXT PRIMARY KEY REFERENCES contracts(id), balance INTEGER, as_of TEXT);
CREATE TABLE IF NOT EXISTS support_codes (
    digest BYTEA PRIMARY KEY, last_two TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id));
CREATE TABLE IF NOT EXISTS license_keys (
    digest BYTEA PRIMARY KEY, last_two TEXT NOT NULL, product TEXT NOT NULL,
    contract_id TEXT NOT NULL REFERENCES contracts(id));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE SEQUENCE IF NOT EXISTS ticket_ids START {FIRST_NEW_TICKET} MINVALUE {FIRST_NEW_TICKET};
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, contract_id TEXT NOT NULL REFERENCES contracts(id),
    status TEXT NOT NULL, purpose TEXT NOT NULL, severity TEXT NOT NULL, call_id TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS auth_failures (caller TEXT NOT NULL, at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS auth_failures_caller ON auth_failures (caller, at);
CREATE TABLE IF NOT EXISTS outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, sent_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (xid, seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (xid, seq);
"""

_INSERTS: Final = {
    "customers": "INSERT INTO customers VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    "caller_numbers": "INSERT INTO caller_numbers VALUES ($1, $2) ON CONFLICT DO NOTHING",
    "contracts": "INSERT INTO contracts VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    "balances": "INSERT INTO balances VALUES ($1, $2, NULL) ON CONFLICT DO NOTHING",
    "support_codes": "INSERT INTO support_codes VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    "license_keys": "INSERT INTO license_keys VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    "tickets": "INSERT INTO tickets VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) ON CONFLICT DO NOTHING",
}
#: Events in their order: the identity numbers them as the array gives them.
_OUTBOX: Final = (
    "INSERT INTO outbox (event_id, topic, payload) SELECT e, t, p "
    "FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(e, t, p, n) ORDER BY n"
)
#: Every IVR's rows, not one's own: a killed IVR's rows are published by whichever runs (docs/scaling.md).
_UNSENT: Final = (
    f"SELECT xid::text, seq, topic, payload FROM outbox WHERE sent_at IS NULL AND {FINISHED} "  # noqa: S608 - constant
    "AND (xid, seq) > ($1::text::xid8, $2) ORDER BY xid, seq LIMIT $3"
)
_WAITING: Final = "SELECT EXISTS (SELECT FROM outbox WHERE sent_at IS NULL AND (xid, seq) > ($1::text::xid8, $2))"
_END: Final = f"SELECT xid::text, seq FROM outbox WHERE {FINISHED} ORDER BY xid DESC, seq DESC LIMIT 1"  # noqa: S608
_TICKET_WITH_OWNER: Final = TICKET_WITH_OWNER.format(p="$1")
_CODE: Final = WITH_CONTRACT.format(table="support_codes", p="$1")
_KEY: Final = WITH_CONTRACT.format(table="license_keys", p="$1")
_TAKE_BALANCE: Final = (
    "UPDATE balances SET balance = $1, as_of = $2 "
    "WHERE contract_id = $3 AND balance IS NOT NULL AND (as_of IS NULL OR as_of <= $2)"
)
#: Connections that hold a number's advisory lock: apart from the lookups' pool, so a holder
#: waiting for a lookup connection never waits behind another holder.
_LOCK_CONNECTIONS: Final = 8


@dataclass(slots=True)
class _Job:
    """Statements and outbox rows to commit together, and the future resolved once they are committed."""

    statements: list[tuple[str, list[tuple[Any, ...]]]]
    outbox: list[tuple[str, str, str]]
    done: asyncio.Future[None]


class PostgresOutbox:
    """An IVR's outbox in PostgreSQL, as its publisher reads it: in the IVR, or as `ivr relay`.

    Several processes may mark rows sent on PostgreSQL (a relay needs no file of its own). Each
    reads every IVR's unsent rows of its schema, so the rows of an IVR that was killed are published
    by the next to look; a row two processes publish at once reaches the ledger twice, with one
    event id, and is deducted once (docs/scaling.md says why the outbox is not kept per IVR).
    """

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - asyncpg's pool
        """Read through ``pool``; use :meth:`open` for a relay's own."""
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> Self:
        """Every row of the outbox at ``dsn`` (in ``schema``), its tables made on first use like the directory's."""
        return cls(await open_pool(dsn, _SCHEMA, schema=schema, size=2))

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def unsent(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """Unsent rows of ended transactions after position ``after``, in (xid, seq) order."""
        xid, seq = unpack(after)
        rows = await retrying(
            self._pool, lambda: finished_rows(self._pool, (_UNSENT, (xid, seq, limit)), (_WAITING, (xid, seq)))
        )
        return [(position(row["xid"], row["seq"]), row["topic"], row["payload"]) for row in rows]

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Rows (by position) the broker acknowledged."""
        marked = seq_numbers(seqs)
        await retrying(
            self._pool,
            lambda: self._pool.execute("UPDATE outbox SET sent_at = $1 WHERE seq = ANY($2::bigint[])", at, marked),
        )

    async def outbox_end(self) -> int:
        """The position of the newest row of an ended transaction (0 when none)."""
        row = await retrying(self._pool, lambda: self._pool.fetchrow(_END))
        return position(row["xid"], row["seq"]) if row else 0


class PostgresDirectory(PostgresOutbox):
    """The IVR's store in PostgreSQL (:class:`~ivr.directory.storage.DirectoryStorage`), shared by IVR processes."""

    def __init__(self, pool: Any, locks: Any, pepper: bytes, namespace: str) -> None:  # noqa: ANN401
        """Wrap the open pools; use :meth:`open`."""
        super().__init__(pool)
        self._jobs: list[_Job] = []
        self._flushing: asyncio.Task[None] | None = None
        self._locks = locks
        self._pepper = pepper
        self._namespace = namespace

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None, pepper: bytes | None = None) -> Self:
        """Connect to ``dsn`` (in ``schema``, made if need be), making the tables on first use.

        The pepper is settled as in SQLite (:func:`~ivr.directory.rows.settle_pepper`), in one
        transaction under the schema's lock, so processes opening a new schema at once agree.
        """
        pool = await connect_pool(dsn, schema=schema)
        try:
            await ensure_schema(pool, _SCHEMA, schema=schema)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("LOCK TABLE meta IN EXCLUSIVE MODE")
                meta = {row["name"]: bytes(row["value"]) for row in await conn.fetch("SELECT name, value FROM meta")}
                pepper, rows = settle_pepper(meta.get("pepper"), meta.get("pepper_check"), pepper, schema or dsn)
                await conn.executemany("INSERT INTO meta VALUES ($1, $2)", rows)
            locks = await connect_pool(dsn, schema=schema, size=_LOCK_CONNECTIONS)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, locks, pepper, schema or "")

    async def close(self) -> None:
        """Let the queued writes commit, then close both pools."""
        if self._flushing is not None:
            await self._flushing
        await self._locks.close()
        await self._pool.close()

    async def load(self, world: World) -> None:
        """Put a fixture world in; what is there already stays (every IVR process on the store loads it).

        The ticket sequence moves past the highest fixture ticket, never back.
        """
        rows = contract_rows(world, self._pepper)
        async with self._pool.acquire() as conn, conn.transaction():
            for table, sql in _INSERTS.items():
                await conn.executemany(sql, rows[table])
            highest = max((int(t) for t in world.tickets), default=0)
            await conn.execute(
                "SELECT setval('ticket_ids', $1, false) WHERE $1 > (SELECT last_value FROM ticket_ids)", highest + 1
            )

    # -- lookups -------------------------------------------------------------------------------

    async def find_ticket(self, ticket_id: str) -> OwnedTicket | None:
        """A ticket with its contract, its owner's kind and the owner's other contracts, with balances, in one read."""
        return owned_ticket(await retrying(self._pool, lambda: self._pool.fetch(_TICKET_WITH_OWNER, ticket_id)))

    async def find_code(self, code: str) -> tuple[SupportCode, Contract, int | None] | None:
        """The support code the caller typed (looked up by its keyed hash), with its contract and balance."""
        hashed = digest(self._pepper, code)
        return code_found(code, await retrying(self._pool, lambda: self._pool.fetchrow(_CODE, hashed)))

    async def find_key(self, key: str) -> tuple[LicenseKey, Contract, int | None] | None:
        """The license key the caller typed (looked up by its keyed hash), with its contract and balance."""
        hashed = digest(self._pepper, key)
        return key_found(key, await retrying(self._pool, lambda: self._pool.fetchrow(_KEY, hashed)))

    async def balance(self, contract_id: str) -> int | None:
        """Incidents left as the ledger last reported them (``None``: unlimited)."""
        balance: int | None = await retrying(
            self._pool, lambda: self._pool.fetchval("SELECT balance FROM balances WHERE contract_id = $1", contract_id)
        )
        return balance

    async def failures(self, caller: str, since: datetime) -> list[datetime]:
        """Failed authorizations from ``caller`` at or after ``since``, written by any IVR process."""
        rows = await retrying(
            self._pool,
            lambda: self._pool.fetch(
                "SELECT at FROM auth_failures WHERE caller = $1 AND at >= $2 ORDER BY at", caller, since
            ),
        )
        return [row["at"] for row in rows]

    @contextlib.asynccontextmanager
    async def caller_lock(self, caller: str) -> AsyncIterator[None]:
        """Hold ``caller``'s advisory lock, in a transaction of its own, for the body's length.

        Transaction-scoped: a process that dies holding it lets it go with its connection, and a
        connection given back mid-transaction is rolled back by the pool. BEGIN and the lock go
        in one round trip; the key is a 64-bit hash of the number (and the schema), made here,
        so the statement holds an integer, never the caller's text.

        Taking the lock is tried again when its connection is cut. A connection cut while the lock
        is held lets the lock go at once, so for that moment another call from the number may
        authorize beside this one; the body goes on (its writes retry on their own).
        """
        key = int.from_bytes(
            hashlib.blake2b(f"{self._namespace}:{caller}".encode(), digest_size=8).digest(), "big", signed=True
        )

        async def take() -> Any:  # noqa: ANN401 - an asyncpg connection
            conn = await self._locks.acquire()
            try:
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({key})")
            except BaseException:
                await self._locks.release(conn)
                raise
            return conn

        conn = await retrying(self._locks, take)
        try:
            yield
        finally:
            try:
                await conn.execute("COMMIT")
            except CONNECTION_LOST as exc:
                # The lock went with the connection; the transaction held nothing else.
                log.warning("a number's lock connection was cut while held", error=str(exc))
            finally:
                await self._locks.release(conn)

    # -- writes ----------------------------------------------------------------------------------

    async def next_ticket_id(self) -> str:
        """The next value of the one ``ticket_ids`` sequence every IVR on the store draws from."""
        return str(await retrying(self._pool, lambda: self._pool.fetchval("SELECT nextval('ticket_ids')")))

    async def _write(self, *statements: tuple[str, list[tuple[Any, ...]]], events: Iterable[CloudEvent]) -> None:
        """Commit ``statements`` and ``events`` together, in the next group commit (see :meth:`_flush`)."""
        job = _Job(list(statements), outbox_rows(events), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="directory-group-commit")
        await job.done

    async def _flush(self) -> None:
        """Commit the queued writes, a group per transaction, one at a time, until none is left.

        Writes queued while a group commits go into the next: one round trip per statement for
        everything queued, instead of three or more (BEGIN, the statements, COMMIT) per write. A
        job is all-or-nothing inside its group (a ticket with its events); a group that fails
        fails each of its jobs, as SQLite's group commit does.
        """
        while self._jobs:
            group, self._jobs = self._jobs, []
            try:
                await self._commit_group(group)
            except Exception as exc:  # noqa: BLE001 - the error belongs to the jobs that wrote
                for job in group:
                    if not job.done.done():
                        job.done.set_exception(exc)
            else:
                for job in group:
                    if not job.done.done():
                        job.done.set_result(None)

    async def _commit_group(self, group: list[_Job]) -> None:
        """One transaction: one ``executemany`` per distinct statement, then every outbox row in order.

        Tried again when the connection is cut (:func:`~ivr.pg.retrying`). A try cut before its
        COMMIT took effect left nothing; one cut during COMMIT may have committed, so the next try
        first asks the server what became of the last one's transaction (:func:`~ivr.pg.committed`)
        and writes nothing again if it committed: no ticket, failure or event is written twice.
        """
        merged: dict[str, list[tuple[Any, ...]]] = {}
        for job in group:
            for sql, rows in job.statements:
                merged.setdefault(sql, []).extend(rows)
        outbox = [row for job in group for row in job.outbox]
        tried: list[str] = []  # the transaction id of each try, once it has one

        async def once() -> None:
            if tried and await committed(self._pool, tried[-1]):
                return  # the last try's COMMIT was cut after it took effect
            async with self._pool.acquire() as conn, conn.transaction():
                tried.append(await conn.fetchval("SELECT pg_current_xact_id()::text"))
                for sql, rows in merged.items():
                    await conn.executemany(sql, rows)
                if outbox:
                    await conn.execute(_OUTBOX, *(list(column) for column in zip(*outbox, strict=True)))

        await retrying(self._pool, once)

    async def record_failure(self, caller: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A failed authorization, for the lockout, with the events that report it."""
        await self._write(("INSERT INTO auth_failures VALUES ($1, $2)", [(caller, at)]), events=events)

    async def create_ticket(self, ticket: Ticket, *, call_id: str, at: datetime, events: Iterable[CloudEvent]) -> None:
        """A new ticket and its events, in one transaction."""
        row = ticket_row(ticket, call_id, at)
        await self._write(("INSERT INTO tickets VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", [row]), events=events)

    async def add_events(self, events: Iterable[CloudEvent]) -> None:
        """Events with no other write to go with them."""
        await self._write(events=events)

    async def take_ledger_events(self, events: Iterable[CloudEvent]) -> None:
        """Take the ledger's word for contracts' balances; ``as_of`` keeps an older event from undoing a newer."""
        rows = balances_taken(events)
        if rows:
            await self._write((_TAKE_BALANCE, rows), events=())

    async def deductible_tickets(self) -> list[tuple[str, str, str]]:
        """(source, event id, ticket) of every ``ticket.created`` that asks the ledger to deduct."""
        rows = await retrying(
            self._pool,
            lambda: self._pool.fetch("SELECT payload FROM outbox WHERE topic LIKE '%/ticket/created/%' ORDER BY seq"),
        )
        return deductible(row["payload"] for row in rows)
