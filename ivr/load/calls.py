"""`ivr load --workers`: the calls handed to the IVR processes a block at a time, from a file they share.

Dealt out in advance (worker ``k`` placing calls ``k``, ``k + N``, ...), every worker would have
as many calls but not as much of the machine, so one would end well before the other
(docs/performance.md), and a run lasts as long as its last worker. Taken a block at a
time, a worker that runs ahead takes more, and the workers end together. Any call can go to any
worker: each call has its own caller number (a caller's lockout stays in one IVR), and the workers
number their tickets apart (:meth:`ivr.directory.sqlite.SqliteDirectory.share_ticket_numbers`).
The file also takes each call's signature (a digest of its plan; its outcome) from the worker
that ran it, so the run's digests cover every call in index order, whichever worker ran it.

On PostgreSQL (``--store``) :class:`DatabaseCalls` does both in the database the workers share,
which also numbers the tickets and keeps each number's lockout, so no file is needed.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Final, Self

from ivr.pg import connect_pool, ensure_schema
from ivr.transaction import immediate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping
    from pathlib import Path

__all__ = ["BLOCK", "CallFile", "DatabaseCalls"]

#: Calls taken at once: a worker's last block is at most this much behind the others' at the end.
BLOCK: Final = 20

_SCHEMA: Final = """
CREATE TABLE dealt (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL, calls INTEGER NOT NULL);
CREATE TABLE signatures (call INTEGER PRIMARY KEY, plan TEXT NOT NULL, outcome TEXT NOT NULL);
"""


class CallFile:
    """Call indices ``0 .. calls - 1`` handed out once each, in blocks, to whoever asks first.

    Each worker holds its own connection; a block is taken in one short write transaction
    (``BEGIN IMMEDIATE``: two workers never take the same block). It is called on the worker's
    event loop: ~0.1 ms once per :data:`BLOCK` calls, less than a call costs. The file is a run's
    scratch, so nothing is synced: a crashed run is run again.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        """Wrap an open connection; use :meth:`create` and :meth:`open`."""
        self.path = path
        self._conn = conn

    @classmethod
    def create(cls, path: Path, calls: int) -> Self:
        """A new file at ``path`` dealing ``calls`` calls."""
        conn = _connect(path)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO dealt VALUES (1, 0, ?)", (calls,))
        return cls(path, conn)

    @classmethod
    def open(cls, path: Path) -> Self:
        """The file :meth:`create` made, from another process."""
        if not path.exists():
            msg = f"{path}: no such call file"
            raise FileNotFoundError(msg)
        return cls(path, _connect(path))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def take(self, block: int = BLOCK) -> range:
        """The next ``block`` call indices no one has taken; empty once all are."""
        with immediate(self._conn):
            first, calls = self._conn.execute("SELECT next, calls FROM dealt").fetchone()
            end = min(first + block, calls)
            self._conn.execute("UPDATE dealt SET next = ?", (end,))
        return range(first, end)

    def indices(self) -> Iterator[int]:
        """Every index this worker takes, a block at a time, as it asks for the next."""
        while block := self.take():
            yield from block

    def record(self, signatures: Mapping[int, tuple[str, str]]) -> None:
        """Keep the signatures of the calls this worker ran (see :meth:`ivr.load.launch.Launcher.digests`)."""
        with immediate(self._conn):
            self._conn.executemany("INSERT INTO signatures VALUES (?, ?, ?)", [(i, *s) for i, s in signatures.items()])

    def signatures(self) -> dict[int, tuple[str, str]]:
        """Every call's signature, recorded by the workers that ran them."""
        rows = self._conn.execute("SELECT call, plan, outcome FROM signatures").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA synchronous=OFF")
    return conn


_TABLES: Final = """
CREATE TABLE IF NOT EXISTS load_dealt (
    id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL, calls INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS load_signatures (call INTEGER PRIMARY KEY, plan TEXT NOT NULL, outcome TEXT NOT NULL);
"""
#: The next block, taken by one statement: the row lock makes two workers take turns.
_TAKE: Final = (
    "UPDATE load_dealt AS d SET next = LEAST(d.next + $1, d.calls) "
    "FROM (SELECT next FROM load_dealt WHERE id = 1 FOR UPDATE) AS before RETURNING before.next, d.next"
)


class DatabaseCalls:
    """:class:`CallFile`'s dealing and signatures in the PostgreSQL database the workers share (``--store``).

    The workers of a run on PostgreSQL need no file of their own: the database they keep their
    state in deals the calls too. A block is one ``UPDATE`` (a round trip a :data:`BLOCK` calls).
    """

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - asyncpg's pool
        """Wrap an open pool; use :meth:`create` and :meth:`open`."""
        self._pool = pool

    @classmethod
    async def create(cls, dsn: str, calls: int) -> Self:
        """Deal ``calls`` calls from the database at ``dsn`` (the run's schema)."""
        pool = await connect_pool(dsn, size=1)
        await ensure_schema(pool, _TABLES)
        await pool.execute("INSERT INTO load_dealt VALUES (1, 0, $1)", calls)
        return cls(pool)

    @classmethod
    async def open(cls, dsn: str) -> Self:
        """The dealing :meth:`create` set up, from a worker."""
        return cls(await connect_pool(dsn, size=1))

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def take(self, block: int = BLOCK) -> range:
        """The next ``block`` call indices no one has taken; empty once all are."""
        row = await self._pool.fetchrow(_TAKE, block)
        return range(row[0], row[1])

    async def indices(self) -> AsyncIterator[int]:
        """Every index this worker takes, a block at a time, as it asks for the next."""
        while block := await self.take():
            for index in block:
                yield index

    async def record(self, signatures: Mapping[int, tuple[str, str]]) -> None:
        """Keep the signatures of the calls this worker ran."""
        await self._pool.executemany(
            "INSERT INTO load_signatures VALUES ($1, $2, $3)", [(i, *s) for i, s in signatures.items()]
        )

    async def signatures(self) -> dict[int, tuple[str, str]]:
        """Every call's signature, recorded by the workers that ran them."""
        rows = await self._pool.fetch("SELECT call, plan, outcome FROM load_signatures")
        return {row[0]: (row[1], row[2]) for row in rows}
