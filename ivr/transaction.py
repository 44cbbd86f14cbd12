"""One write transaction on a plain `sqlite3` connection, for the short ones made outside an event loop's hops.

``BEGIN IMMEDIATE`` takes the file's write lock before anything is read, so two processes
deciding from the same rows (two ledgers migrating one old file, two load workers taking the
next block of calls) take turns instead of both reading the same state.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator

__all__ = ["immediate"]


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn`` (``isolation_level=None``); rolled back if the body raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
