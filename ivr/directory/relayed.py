"""An IVR's outbox as `ivr relay` sees it from its own process: read only, progress in a file of its own.

The relay must not write to the IVR's directory: a second writer on that file makes the IVR's
group-commit writer wait for the lock, and with 10,000 live calls those waits came back as bursts
of delayed prompts (keypress -> prompt p95 ~95 ms without the relay's writes, ~770 ms with them;
docs/performance.md). So the directory is opened read-only (SQLite in WAL mode lets a reader
follow the writer), and what has been published is one number, the highest outbox ``seq``
acknowledged by the broker, kept in the relay's own SQLite file. One number is enough because the
publisher marks only an unbroken prefix of the outbox, in order.

The IVR's own ``sent_at`` column stays empty for a relayed outbox; the progress file is the record.

The ledger's file is relayed the same way (`ivr ledger relay`): its entries are an outbox in
rowid order, read with :data:`ivr.ledger.store.UNSENT` and the SQL functions it calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import aiosqlite

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from ivr.directory.storage import OutboxRow

__all__ = ["LEDGER_PROGRESS_FILE", "OUTBOX_ROWS", "PROGRESS_FILE", "RelayedOutbox", "RowsQuery", "relayed_up_to"]

#: The relay's progress file, beside the directory it relays, unless told otherwise.
PROGRESS_FILE = "relay.db"
#: `ivr ledger relay`'s progress file, beside the ledger's file unless told otherwise.
LEDGER_PROGRESS_FILE = "ledger-relay.db"


@dataclass(frozen=True, slots=True)
class RowsQuery:
    """How a relay reads the rows after its high-water mark.

    ``sql`` gives ``(seq, topic, payload)`` in order (parameters: the mark, the limit); it may call
    ``functions``, ``(name, arguments, function)``, registered on the relay's connection.
    """

    sql: str
    functions: tuple[tuple[str, int, Callable[..., Any]], ...] = ()


#: The IVR's outbox after the high-water mark, in order.
OUTBOX_ROWS = RowsQuery("SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?")

_PROGRESS = "CREATE TABLE IF NOT EXISTS progress (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, at TEXT)"


class RelayedOutbox:
    """The :class:`~ivr.bus.publisher.Outbox` of `ivr relay`: rows after the high-water mark, in order."""

    def __init__(
        self, outbox: aiosqlite.Connection, progress: aiosqlite.Connection, high: int, rows: RowsQuery
    ) -> None:
        """Wrap the open connections; use :meth:`open`."""
        self._outbox = outbox
        self._progress = progress
        self._high = high
        self._rows = rows

    @classmethod
    async def open(cls, directory: Path, progress: Path, *, rows: RowsQuery = OUTBOX_ROWS) -> Self:
        """Read ``directory``'s outbox with ``rows``; keep what was published in ``progress`` (created if need be)."""
        outbox = await aiosqlite.connect(_read_only(directory), uri=True)
        for name, arguments, function in rows.functions:
            await outbox.create_function(name, arguments, function, deterministic=True)
        store = await aiosqlite.connect(str(progress))
        await store.execute("PRAGMA journal_mode=WAL")
        await store.execute(_PROGRESS)
        await store.commit()
        done = list(await store.execute_fetchall("SELECT seq FROM progress WHERE id = 1"))
        return cls(outbox, store, done[0][0] if done else 0, rows)

    async def close(self) -> None:
        """Close both files."""
        await self._outbox.close()
        await self._progress.close()

    async def unsent(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """The oldest rows after the last one the broker acknowledged (and after ``after``)."""
        rows = await self._outbox.execute_fetchall(self._rows.sql, (max(self._high, after), limit))
        return [(row[0], row[1], row[2]) for row in rows]

    async def mark_sent(self, seqs: Iterable[int], at: str) -> None:
        """Rows the broker acknowledged: the publisher's unbroken prefix, so its last is the new mark."""
        high = max(seqs, default=self._high)
        await self._progress.execute("INSERT OR REPLACE INTO progress VALUES (1, ?, ?)", (high, at))
        await self._progress.commit()
        self._high = high


async def relayed_up_to(progress: Path) -> int:
    """The highest outbox ``seq`` a relay has published (0 before its first), read from its file."""
    try:
        async with aiosqlite.connect(_read_only(progress), uri=True) as conn:
            rows = list(await conn.execute_fetchall("SELECT seq FROM progress WHERE id = 1"))
    except aiosqlite.OperationalError:  # no file, or no table yet: the relay has not started
        return 0
    return int(rows[0][0]) if rows else 0


def _read_only(path: Path) -> str:
    """An SQLite URI that opens ``path`` for reading only."""
    return f"{path.resolve().as_uri()}?mode=ro"
