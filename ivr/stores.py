"""Where a process keeps its state: an SQLite file (the embedded default) or a PostgreSQL database.

A store is named by a URL: ``postgresql://user@host:port/db`` (or ``postgres://``) for the server
that several IVR and ledger processes share; ``sqlite:///relative/path``, ``sqlite:////absolute``
or a bare path for a file of one process's own. The IVR's commands read ``--store`` or
:data:`ENV_VAR`; the ledger's read ``--store`` or :data:`LEDGER_ENV_VAR`, since an SQLite IVR and
its ledger keep separate files (on PostgreSQL both name the same database: their tables differ).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ivr.directory.postgres import PostgresDirectory
from ivr.directory.sqlite import SqliteDirectory
from ivr.ledger.postgres import PostgresLedgerStore
from ivr.ledger.store import SqliteLedgerStore
from ivr.pg import connect_pool, drop_schema, ensure_schema, safe_dsn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ivr.directory.storage import DirectoryStorage
    from ivr.ledger.storage import LedgerStorage

__all__ = [
    "ENV_VAR",
    "LEDGER_ENV_VAR",
    "Store",
    "StoreUrlError",
    "in_schema",
    "open_directory",
    "open_ledger",
    "parse_store_url",
    "scratch_schema",
]

#: The environment variable naming the IVR's store.
ENV_VAR: Final = "IVR_STORE"
#: The environment variable naming the ledger's store.
LEDGER_ENV_VAR: Final = "IVR_LEDGER_STORE"
_POSTGRES: Final = ("postgresql://", "postgres://")
_SQLITE: Final = "sqlite:///"


class StoreUrlError(ValueError):
    """A store URL of a kind this program does not open."""


@dataclass(frozen=True, slots=True)
class Store:
    """A parsed store URL: a PostgreSQL DSN, or an SQLite path (exactly one is set)."""

    dsn: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        """The URL without a password."""
        return str(self.path) if self.dsn is None else safe_dsn(self.dsn)


def parse_store_url(text: str) -> Store:
    """A store from its URL or path; :class:`StoreUrlError` for a scheme that is neither."""
    if text.startswith(_POSTGRES):
        return Store(dsn=text)
    if text.startswith(_SQLITE):
        path = text[len(_SQLITE) :]
        if not path:
            msg = f"{text!r} names no file: write sqlite:///relative/path or sqlite:////absolute/path"
            raise StoreUrlError(msg)
        return Store(path=Path(path))
    if "://" in text:
        msg = f"{text!r}: a store is postgresql://..., sqlite:///PATH or a file path"
        raise StoreUrlError(msg)
    return Store(path=Path(text))


async def open_directory(store: Store, *, schema: str | None = None, pepper: bytes | None = None) -> DirectoryStorage:
    """The IVR's directory in ``store`` (in ``schema`` on PostgreSQL)."""
    if store.dsn is not None:
        return await PostgresDirectory.open(store.dsn, schema=schema, pepper=pepper)
    assert store.path is not None  # noqa: S101 - one of the two is always set
    return await SqliteDirectory.open(store.path, pepper=pepper)


async def open_ledger(store: Store, *, schema: str | None = None) -> LedgerStorage:
    """The ledger's store in ``store`` (in ``schema`` on PostgreSQL)."""
    if store.dsn is not None:
        return await PostgresLedgerStore.open(store.dsn, schema=schema)
    assert store.path is not None  # noqa: S101 - one of the two is always set
    return await SqliteLedgerStore.open(store.path)


@contextlib.asynccontextmanager
async def scratch_schema(store: Store | None, prefix: str) -> AsyncIterator[str | None]:
    """A schema of its own on ``store``'s database (a scenario's, a session world's, a load run's), dropped after.

    ``None`` where there is no PostgreSQL ``store``: files of one's own take a schema's place there.
    """
    if store is None or store.dsn is None:
        yield None
        return
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    pool = await connect_pool(store.dsn, size=1)
    try:
        await ensure_schema(pool, "", schema=name)
        yield name
    finally:
        try:
            await drop_schema(pool, name)
        finally:
            await pool.close()


def in_schema(store: Store, schema: str | None) -> Store:
    """``store`` with ``schema`` first on the search path of every connection, for processes given only a URL.

    With no ``schema`` (``store`` is not PostgreSQL: :func:`scratch_schema` made none) ``store`` as it is.
    """
    if schema is None or store.dsn is None:
        return store
    joiner = "&" if "?" in store.dsn else "?"
    return Store(dsn=f"{store.dsn}{joiner}search_path={schema}")
