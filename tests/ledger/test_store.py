"""The ledger's SQLite store beyond its contract (tests/storage): connections sharing a file, migrations, relays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import replace

import pytest

from ivr.directory.relayed import LEDGER_PROGRESS_FILE, RelayedOutbox, RowsQuery, relayed_up_to
from ivr.events import CloudEvent
from ivr.ledger.core import ledger_event
from ivr.ledger.storage import Applied
from ivr.ledger.store import ANNOUNCEMENT_FUNCTIONS, UNSENT, SqliteLedgerStore
from tests.storage.test_ledger_contract import NOW, OPENING, request

RELAYED = RowsQuery(UNSENT.format(after="rowid > ?"), ANNOUNCEMENT_FUNCTIONS)


async def open_fresh(path):
    """A store just created, with the opening balances loaded."""
    store = await SqliteLedgerStore.open(path)
    await store.load_opening(OPENING)
    return store


async def announced(store):
    """The ledger events the store has yet to publish, as the announcer reads them."""
    return [CloudEvent.from_dict(json.loads(payload)) for _, _, payload in await store.unsent()]


async def open_after_restart(path):
    """A store created, loaded, closed and opened again (with the opening loaded again, as at every start)."""
    first = await open_fresh(path)
    await first.close()
    store = await SqliteLedgerStore.open(path)
    await store.load_opening(OPENING)
    return store


async def test_two_connections_racing_for_the_last_incident_deduct_once(tmp_path):
    """Two stores on one file (two ledger processes) racing for K-ONE's last incident: one deduction overall."""
    path = tmp_path / "ledger.db"
    first = await open_fresh(path)
    second = await SqliteLedgerStore.open(path)
    try:
        # A third writer holds the write lock while both stores start their batch, so that both have
        # begun before either can commit: the widest window a real race could have.
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            racing = [
                asyncio.ensure_future(store.apply([request(ticket, contract="K-ONE")], source="ledger", now=NOW))
                for store, ticket in ((first, "2000001"), (second, "2000002"))
            ]
            await asyncio.sleep(0.3)
            holder.execute("COMMIT")
        results = await asyncio.gather(*racing, return_exceptions=True)
        # A loser may be rejected, or told to retry (a locked or stale database); it must not deduct.
        assert all(isinstance(r, Applied | sqlite3.OperationalError) for r in results), results
        assert await first.deducted() == {"K-ONE": 1}
        assert (await first.balances())["K-ONE"] == (1, 0)
        assert (await first.verify()).ok
    finally:
        await first.close()
        await second.close()


async def test_sequential_connections_see_each_others_deductions(tmp_path):
    """Two stores on one file taking turns: the second sees the first's deduction and rejects."""
    path = tmp_path / "ledger.db"
    first = await open_fresh(path)
    second = await SqliteLedgerStore.open(path)
    try:
        await first.apply([request("2000001", contract="K-ONE")], source="ledger", now=NOW)
        verdicts = (await second.apply([request("2000002", contract="K-ONE")], source="ledger", now=NOW)).verdicts
        assert [v.reason for v in verdicts] == ["no_incidents_left"]
        assert await second.deducted() == {"K-ONE": 1}
    finally:
        await first.close()
        await second.close()


async def test_a_redelivery_racing_on_two_connections_leaves_the_file_writable(tmp_path):
    """One event delivered to two stores at once: one deduction, and the file is not left locked."""
    path = tmp_path / "ledger.db"
    first = await open_fresh(path)
    second = await SqliteLedgerStore.open(path)
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            racing = [
                asyncio.ensure_future(store.apply([request("2000001")], source="ledger", now=NOW))
                for store in (first, second)
            ]
            await asyncio.sleep(0.3)
            holder.execute("COMMIT")
        await asyncio.gather(*racing, return_exceptions=True)
        assert await first.deducted() == {"K-FIVE": 1}
        with contextlib.closing(sqlite3.connect(path, timeout=0.2, isolation_level=None)) as probe:
            probe.execute("BEGIN IMMEDIATE")  # raises "database is locked" if a store kept its transaction
            probe.execute("ROLLBACK")
    finally:
        await first.close()
        await second.close()


async def test_a_relay_reads_the_same_events_in_commit_order_and_keeps_its_place_in_its_own_file(tmp_path):
    """`ivr ledger relay`'s view: the store's events from after its mark, the ledger's file never written."""
    store = await open_fresh(tmp_path / "ledger.db")
    progress = tmp_path / LEDGER_PROGRESS_FILE
    try:
        await store.apply([request("2000001"), request("2000002", contract="K-ZERO")], source="ledger-1", now=NOW)
        relayed = await RelayedOutbox.open(tmp_path / "ledger.db", progress, rows=RELAYED)
        try:
            first = await relayed.unsent(1000)
            assert first == await store.unsent()
            await relayed.mark_sent([first[0][0]], NOW)
            await store.apply([request("2000003")], source="ledger-1", now=NOW)
            assert [rowid for rowid, _, _ in await relayed.unsent(1000)] == [2, 3]
        finally:
            await relayed.close()
        reopened = await RelayedOutbox.open(tmp_path / "ledger.db", progress, rows=RELAYED)
        try:
            assert [rowid for rowid, _, _ in await reopened.unsent(1000)] == [2, 3]
        finally:
            await reopened.close()
        assert await relayed_up_to(progress) == 1
        assert len(await store.unsent()) == 3
    finally:
        await store.close()


async def test_a_batch_cancelled_while_waiting_for_the_write_lock_leaves_nothing_half_done(tmp_path):
    """Cancelled at BEGIN (another writer holds the file): no entry, the file unlocked, the store usable."""
    path = tmp_path / "ledger.db"
    store = await open_fresh(path)
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            waiting = asyncio.ensure_future(store.apply([request("2000001")], source="ledger", now=NOW))
            await asyncio.sleep(0.2)
            waiting.cancel()
            await asyncio.sleep(0.1)
            holder.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await store.entries_end() == 0
        with contextlib.closing(sqlite3.connect(path, timeout=0.2, isolation_level=None)) as probe:
            probe.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the store kept its transaction
            probe.execute("ROLLBACK")
        assert len((await store.apply([request("2000002")], source="ledger", now=NOW)).verdicts) == 1
    finally:
        await store.close()


#: The entries table as files made before round 6 have it: each announcement stored whole.
OLD_ENTRIES = """
CREATE TABLE contracts (id TEXT PRIMARY KEY, opening INTEGER, balance INTEGER, CHECK (balance IS NULL OR balance >= 0));
CREATE TABLE entries (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, call_id TEXT NOT NULL,
    contract_id TEXT NOT NULL, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
    balance_after INTEGER, applied_at TEXT NOT NULL, event TEXT NOT NULL, published_at TEXT);
CREATE UNIQUE INDEX entries_ticket ON entries (source, ticket_id);
CREATE INDEX entries_unpublished ON entries (applied_at) WHERE published_at IS NULL;
"""


async def test_a_file_of_the_earlier_shape_is_migrated_announcing_what_it_stored(tmp_path):
    """An old file (announcements stored whole): same rowids, the same bytes announced, duplicates still found."""
    path = tmp_path / "ledger.db"
    old = [
        ledger_event(verdict, source="old-ledger", time=NOW)
        for verdict in await _verdicts_of(
            tmp_path / "scratch.db", [request("2000001"), request("2000002", contract="K-ZERO")]
        )
    ]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_ENTRIES)
        conn.executemany("INSERT INTO contracts VALUES (?, ?, ?)", [("K-FIVE", 5, 4), ("K-ZERO", 0, 0)])
        for rowid, (event, req) in enumerate(
            zip(old, [request("2000001"), request("2000002", contract="K-ZERO")], strict=True), 1
        ):
            conn.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    req.key,
                    req.source,
                    req.event_id,
                    req.call_id,
                    req.contract_id,
                    req.ticket_id,
                    "deducted" if rowid == 1 else "rejected",
                    None if rowid == 1 else "no_incidents_left",
                    4 if rowid == 1 else 0,
                    NOW,
                    event.to_json(),
                    NOW if rowid == 1 else None,
                ),
            )
        conn.commit()
    store = await SqliteLedgerStore.open(path)
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(entries)")]
        assert "event" not in columns
        assert "ledger" in columns
        assert await store.unsent() == [(2, "ivr/v2/ledger/deduction_rejected", old[1].to_json())]
        relayed = await RelayedOutbox.open(path, tmp_path / LEDGER_PROGRESS_FILE, rows=RELAYED)
        try:
            assert [payload for _, _, payload in await relayed.unsent(10)] == [e.to_json() for e in old]
        finally:
            await relayed.close()
        again = await store.apply([request("2000001"), request("2000002", contract="K-ZERO")], source="new", now=NOW)
        assert again == Applied()  # no digest in an old file's entries: duplicates, never conflicts
        assert len((await store.apply([request("2000003")], source="new", now=NOW)).verdicts) == 1
        assert await store.entries_end() == 3
        assert (await store.verify()).ok
    finally:
        await store.close()
    again = await SqliteLedgerStore.open(path)  # a migrated file opens as any other
    try:
        assert await again.entries_end() == 3
    finally:
        await again.close()


async def _verdicts_of(path, requests):
    """The verdicts a fresh store gives ``requests``."""
    store = await open_fresh(path)
    try:
        return (await store.apply(requests, source="old-ledger", now=NOW)).verdicts
    finally:
        await store.close()


#: The entries table as rounds 6 and 7 made it: no digest of the event applied.
ROUND_7_ENTRIES = """
CREATE TABLE contracts (id TEXT PRIMARY KEY, opening INTEGER, balance INTEGER, CHECK (balance IS NULL OR balance >= 0));
CREATE TABLE entries (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, call_id TEXT NOT NULL,
    contract_id TEXT NOT NULL, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
    balance_after INTEGER, applied_at TEXT NOT NULL, ledger TEXT NOT NULL, published_at TEXT);
CREATE UNIQUE INDEX entries_ticket ON entries (source, ticket_id);
"""


async def test_a_file_without_digests_gains_the_column_and_its_entries_are_never_conflicts(tmp_path):
    """A round-7 file opens with a digest column; a repeat of an entry made without one is a duplicate."""
    path = tmp_path / "ledger.db"
    old = request("2000001")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(ROUND_7_ENTRIES)
        conn.execute("INSERT INTO contracts VALUES ('K-FIVE', 5, 4)")
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, 'deducted', NULL, 4, ?, 'old-ledger', ?)",
            (old.key, old.source, old.event_id, old.call_id, old.contract_id, old.ticket_id, NOW, NOW),
        )
        conn.commit()
    store = await SqliteLedgerStore.open(path)
    try:
        repeat = replace(old, digest=b"whatever it is")
        assert await store.apply([repeat], source="new", now=NOW) == Applied()
        fresh = replace(request("2000002"), digest=b"new")
        assert [v.balance_after for v in (await store.apply([fresh], source="new", now=NOW)).verdicts] == [3]
        forged = replace(fresh, digest=b"forged")
        assert (await store.apply([forged], source="new", now=NOW)).conflicts == [forged]
    finally:
        await store.close()
