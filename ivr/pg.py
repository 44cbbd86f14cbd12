"""What the PostgreSQL adapters share: a pool in a schema of its own, the schema made once, outbox positions.

Positions: a sequence's order is not the order of commits (a row numbered 7 may commit after
row 8 was read, and a high-water mark at 8 would skip it). So rows carry the id of the
transaction that wrote them (``xid8``, ``pg_current_xact_id()``), and a publisher reads only rows
whose transaction is older than every transaction still running (``xid < pg_snapshot_xmin(
pg_current_snapshot())``): those have all ended, so no row can later appear below what was
read. A row's position is its (xid, seq), packed into one integer for the publisher.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, Final, TypeVar

import asyncpg
import structlog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

T = TypeVar("T")

__all__ = [
    "CONNECTION_LOST",
    "FINISHED",
    "DatabaseUnavailableError",
    "committed",
    "connect_pool",
    "drop_schema",
    "ensure_schema",
    "finished_rows",
    "position",
    "retrying",
    "safe_dsn",
    "seq_numbers",
    "unpack",
]

log = structlog.get_logger("ivr.pg")

#: Errors that say the connection was lost or the server is going away or coming back (class 57:
#: pg_terminate_backend, a shutdown, a restart), not that a statement was wrong: the pool opens
#: another connection, and the work is tried again.
CONNECTION_LOST: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection cut in the middle of an operation
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)
#: How long :func:`retrying` keeps trying before the error is the caller's.
RETRY_FOR: Final = 60.0

#: The condition that a row's transaction has ended, committed or not, for every reader.
FINISHED: Final = "xid < pg_snapshot_xmin(pg_current_snapshot())"
_SEQ_BITS: Final = 64
_SEQ_MASK: Final = (1 << _SEQ_BITS) - 1
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: The advisory lock (one key for every schema) under which a schema's tables are made: two
#: processes making them at once otherwise collide in the catalogue.
_DDL_LOCK: Final = 7_315_004_215


class DatabaseUnavailableError(RuntimeError):
    """The database does not answer, or refuses the connection: what to check is in the message."""


def position(xid: str, seq: int) -> int:
    """A row's position from its transaction id (as text) and its sequence number."""
    return (int(xid) << _SEQ_BITS) | seq


def unpack(mark: int) -> tuple[str, int]:
    """The (xid as text, seq) a position stands for, to compare rows with in SQL."""
    return str(mark >> _SEQ_BITS), mark & _SEQ_MASK


def seq_numbers(positions: Iterable[int]) -> list[int]:
    """The sequence numbers of rows given by position."""
    return [p & _SEQ_MASK for p in positions]


def _schema(name: str) -> str:
    if not _SCHEMA_NAME.fullmatch(name):
        msg = f"{name!r} is not a schema name this program makes (lower-case letters, digits, _)"
        raise ValueError(msg)
    return name


async def connect_pool(dsn: str, *, schema: str | None = None, size: int = 10) -> Any:  # noqa: ANN401 - asyncpg ships no types
    """A pool on ``dsn``, every connection's ``search_path`` set to ``schema`` if given."""
    settings = {"search_path": _schema(schema)} if schema else {}
    try:
        return await asyncpg.create_pool(dsn, min_size=1, max_size=size, server_settings=settings, reset=_keep_session)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        msg = f"PostgreSQL at {safe_dsn(dsn)} cannot be used: {exc}"
        raise DatabaseUnavailableError(msg) from exc


async def ensure_schema(pool: Any, ddl: str, *, schema: str | None = None) -> None:  # noqa: ANN401 - asyncpg ships no types
    """Make ``schema`` (if named) and run ``ddl`` in it, one process at a time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        if schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_schema(schema)}")
        if ddl:
            await conn.execute(ddl)


async def open_pool(dsn: str, ddl: str, *, schema: str | None = None, size: int = 10) -> Any:  # noqa: ANN401 - asyncpg ships no types
    """A pool on ``dsn`` whose tables (``ddl``, in ``schema`` if named) are made on first use; closed if that fails."""
    pool = await connect_pool(dsn, schema=schema, size=size)
    try:
        await ensure_schema(pool, ddl, schema=schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def _keep_session(_: Any) -> None:  # noqa: ANN401 - an asyncpg connection
    """A connection going back to the pool keeps its session as it is.

    asyncpg's default reset (advisory unlocks, ``RESET ALL``, ``UNLISTEN``) is one more round
    trip per query, and nothing here changes the session: advisory locks are transaction-scoped,
    settings are the pool's own. asyncpg still ends a transaction left open.
    """


def safe_dsn(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", dsn)


async def drop_schema(pool: Any, schema: str) -> None:  # noqa: ANN401 - asyncpg ships no types
    """Drop ``schema`` and everything in it (a replayed scenario's, once it has ended)."""
    await pool.execute(f"DROP SCHEMA IF EXISTS {_schema(schema)} CASCADE")


async def finished_rows(
    pool: Any,  # noqa: ANN401 - asyncpg's pool
    query: tuple[str, tuple[Any, ...]],
    waiting: tuple[str, tuple[Any, ...]],
) -> list[Any]:
    """The rows of ``query`` (SQL, arguments: rows of ended transactions), waiting while only later ones are there.

    A committed row whose transaction is younger than one still running is not read yet. A
    publisher told "nothing" would go idle while that row waits, so when ``query`` finds nothing
    and ``waiting`` says committed rows are there after the same position, this reads again
    shortly; the running transaction, short, ends meanwhile. A transaction left open anywhere on
    the server holds publishing back until it ends (docs/scaling.md).
    """
    delay = 0.001
    while True:
        rows: list[Any] = await pool.fetch(query[0], *query[1])
        if rows or not await pool.fetchval(waiting[0], *waiting[1]):
            return rows
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def retrying(pool: Any, work: Callable[[], Awaitable[T]], *, within: float = RETRY_FOR) -> T:  # noqa: ANN401
    """``work()``, tried again while the connection is lost (:data:`CONNECTION_LOST`), for ``within`` seconds.

    Each loss replaces every connection of ``pool``: a server that cut one (a restart, an
    administrator) has usually cut the idle ones too.

    Only for work that may run twice: a transaction whose COMMIT was cut may have committed, so
    its second run must find what the first did (the ledger's entries are keyed, a repeat is a
    duplicate; marking rows sent twice marks them once).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.05
    while True:
        try:
            return await work()
        except CONNECTION_LOST as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("database connection lost; trying again", error=str(exc), retry_in=delay)
            await pool.expire_connections()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def committed(pool: Any, xid: str, *, within: float = RETRY_FOR) -> bool:  # noqa: ANN401 - asyncpg's pool
    """Whether transaction ``xid`` (as text) committed, waiting while it still runs: a COMMIT whose answer was lost.

    A connection cut during COMMIT leaves the outcome unknown to the client; the server knows it
    (``pg_xact_status``) once the cut backend has ended the transaction, one way or the other.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.01
    while True:
        status = await pool.fetchval("SELECT pg_xact_status($1::text::xid8)", xid)
        if status != "in progress":
            return bool(status == "committed")
        if loop.time() + delay > deadline:
            msg = f"transaction {xid}, whose COMMIT was cut, is still running after {within} s"
            raise DatabaseUnavailableError(msg)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
