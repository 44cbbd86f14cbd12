"""The ledger's SQLite store: exactly one deduction per ticket, never below zero, survives a restart (R7)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import replace

import pytest

from ivr.directory.relayed import LEDGER_PROGRESS_FILE, RelayedOutbox, RowsQuery, relayed_up_to
from ivr.events import CloudEvent, EventType
from ivr.ledger.core import DeductionRequest, Outcome, ledger_event
from ivr.ledger.storage import Applied
from ivr.ledger.store import ANNOUNCEMENT_FUNCTIONS, UNSENT, SqliteLedgerStore

RELAYED = RowsQuery(UNSENT.format(after="rowid > ?"), ANNOUNCEMENT_FUNCTIONS)

OPENING = {"K-FIVE": 5, "K-ONE": 1, "K-ZERO": 0, "K-UNLIMITED": None}
NOW = "2026-11-17T15:00:00+00:00"


def request(ticket: str, *, contract: str = "K-FIVE", event_id: str | None = None, source: str = "ivr-1"):
    """A deduction request for ``ticket``; by default its event id is derived from the ticket."""
    return DeductionRequest(
        source=source,
        event_id=event_id or f"evt-{ticket}",
        call_id=f"call-{ticket}",
        contract_id=contract,
        ticket_id=ticket,
    )


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


class TestLedgerStore:
    """The store's guarantees; subclasses run the same tests against other ways of obtaining a store."""

    open_store = staticmethod(open_fresh)

    @pytest.fixture
    def path(self, tmp_path):
        """The ledger's SQLite file."""
        return tmp_path / "ledger.db"

    @pytest.fixture
    async def store(self, path):
        """A store on ``path``, closed after the test."""
        store = await self.open_store(path)
        yield store
        await store.close()

    async def apply(self, store, *requests):
        """Apply ``requests`` as one batch; the verdicts of those new to the store."""
        return (await store.apply(list(requests), source="ledger-1", now=NOW)).verdicts

    async def test_opening_balances(self, store):
        """Opening balances load as (opening, balance); ``None`` is unlimited."""
        assert await store.balances() == {k: (v, v) for k, v in OPENING.items()}
        assert await store.deducted() == {}

    async def test_a_request_deducts_one_and_announces_it(self, store):
        """One request on a limited contract deducts one incident; the ledger's event for it waits to be published."""
        verdicts = await self.apply(store, request("2000001"))
        assert [(v.outcome, v.balance_after) for v in verdicts] == [(Outcome.DEDUCTED, 4)]
        events = await announced(store)
        assert [e.type for e in events] == [EventType.LEDGER_INCIDENT_DEDUCTED]
        event = events[0]
        assert event.data == {
            "contract": "K-FIVE",
            "ticket": "2000001",
            "trigger_event_id": "evt-2000001",
            "trigger_source": "ivr-1",
            "balance_after": 4,
        }
        assert (event.source, event.subject, event.time) == ("ledger-1", "call-2000001", NOW)
        assert (await store.balances())["K-FIVE"] == (5, 4)
        assert await store.deducted() == {"K-FIVE": 1}

    async def test_a_redelivered_event_deducts_once(self, store):
        """The same event (same source and id) delivered again, in a later batch or the same one, changes nothing."""
        await self.apply(store, request("2000001"))
        assert await self.apply(store, request("2000001")) == []
        assert await self.apply(store, request("2000002"), request("2000002")) != []
        assert await store.deducted() == {"K-FIVE": 2}
        assert (await store.balances())["K-FIVE"] == (5, 3)

    async def test_a_different_event_for_the_same_ticket_deducts_once(self, store):
        """A ticket holds one deduction at most: a re-sent ``ticket.created`` with a new id changes nothing."""
        await self.apply(store, request("2000001", event_id="first"))
        assert await self.apply(store, request("2000001", event_id="second")) == []
        assert await self.apply(store, request("2000003", event_id="a"), request("2000003", event_id="b")) != []
        assert await store.deducted() == {"K-FIVE": 2}
        assert [e.event_id for e in await store.history("K-FIVE")] == ["first", "a"]

    async def test_another_event_under_an_applied_key_is_a_conflict_that_changes_nothing(self, store):
        """Same source and id, another digest: reported as a conflict, never applied; the same digest is a duplicate."""
        first = replace(request("2000001"), digest=b"first")
        await store.apply([first], source="ledger-1", now=NOW)
        forged = replace(request("2000002", event_id=first.event_id, contract="K-ONE"), digest=b"forged")
        applied = await store.apply([forged, first], source="ledger-1", now=NOW)
        assert applied == Applied(verdicts=[], conflicts=[forged])
        assert await store.deducted() == {"K-FIVE": 1}
        assert (await store.balances())["K-ONE"] == (1, 1)

    async def test_a_conflict_in_one_batch_applies_the_first_version(self, store):
        """Two versions of one event in one batch: the first is applied, the second is the conflict."""
        one, two = (replace(request("2000001"), digest=d) for d in (b"one", b"two"))
        applied = await store.apply([one, two], source="ledger-1", now=NOW)
        assert ([v.request for v in applied.verdicts], applied.conflicts) == ([one], [two])

    async def test_the_same_ticket_number_from_another_ivr_is_another_ticket(self, store):
        """Tickets are keyed by (source, ticket): two IVRs numbering alike do not collide."""
        await self.apply(store, request("2000001", source="ivr-1"), request("2000001", source="ivr-2"))
        assert await store.deducted() == {"K-FIVE": 2}

    async def test_two_requests_for_the_last_incident_deduct_one_and_reject_one(self, store):
        """A batch racing for the last incident: the first is deducted, the second rejected, balance 0."""
        await self.apply(store, request("2000001", contract="K-ONE"), request("2000002", contract="K-ONE"))
        events = await announced(store)
        assert [e.type for e in events] == [EventType.LEDGER_INCIDENT_DEDUCTED, EventType.LEDGER_DEDUCTION_REJECTED]
        assert [e.data["balance_after"] for e in events] == [0, 0]
        assert events[1].data["reason"] == "no_incidents_left"
        assert events[1].data["ticket"] == "2000002"
        assert (await store.balances())["K-ONE"] == (1, 0)
        history = await store.history("K-ONE")
        assert [(h.ticket_id, h.outcome, h.reason) for h in history] == [
            ("2000001", "deducted", None),
            ("2000002", "rejected", "no_incidents_left"),
        ]

    async def test_a_balance_never_goes_below_zero(self, store):
        """However many requests arrive for an empty contract, each is rejected and the balance stays 0."""
        for batch in range(3):
            await self.apply(store, *(request(f"2{batch}{i:05}", contract="K-ZERO") for i in range(4)))
        assert (await store.balances())["K-ZERO"] == (0, 0)
        assert await store.deducted() == {}
        assert {h.reason for h in await store.history("K-ZERO")} == {"no_incidents_left"}

    async def test_a_rejection_is_final_for_its_ticket(self, store):
        """A rejected ticket is not deducted later when redelivered, even once incidents are available."""
        await self.apply(store, request("2000001", contract="K-ZERO"))
        assert await self.apply(store, request("2000001", contract="K-ZERO")) == []
        assert [h.outcome for h in await store.history("K-ZERO")] == ["rejected"]

    @pytest.mark.parametrize(
        ("contract", "reason"),
        [("K-UNLIMITED", "unlimited_contract"), ("K-NOBODY", "unknown_contract")],
    )
    async def test_unlimited_and_unknown_contracts_are_rejected(self, store, contract, reason):
        """Nothing is deducted from an unlimited or unknown contract; the rejection says why."""
        await self.apply(store, request("2000001", contract=contract))
        events = await announced(store)
        assert [(e.type, e.data["reason"], e.data["balance_after"]) for e in events] == [
            (EventType.LEDGER_DEDUCTION_REJECTED, reason, None),
        ]
        assert await store.deducted() == {}
        assert (await store.balances()).get("K-UNLIMITED") == (None, None)
        assert "K-NOBODY" not in await store.balances()

    async def test_an_empty_batch_does_nothing(self, store):
        """Applying nothing returns no verdicts and announces nothing."""
        assert await self.apply(store) == []
        assert await store.unsent() == []

    async def test_ledger_event_ids_are_stable_for_a_request(self, store, tmp_path):
        """A ledger event's id derives from its request, so a re-sent announcement is the same event."""
        await self.apply(store, request("2000001"))
        other = await SqliteLedgerStore.open(tmp_path / "other.db")
        try:
            await other.load_opening(OPENING)
            await other.apply([request("2000001")], source="ledger-1", now="later")
            again = await announced(other)
        finally:
            await other.close()
        assert [e.id for e in await announced(store)] == [e.id for e in again]

    async def test_verify_passes_after_deductions(self, store):
        """verify(): opening minus deductions equals every balance, and every expected ticket was applied."""
        await self.apply(store, request("2000001"), request("2000002"), request("2000003", contract="K-ONE"))
        await self.apply(store, request("2000004", contract="K-ONE"))
        report = await store.verify(expected=[("ivr-1", "2000001"), ("ivr-1", "2000002"), ("ivr-1", "2000004")])
        assert report.ok, report.problems
        assert (report.contracts, report.deductions, report.rejections) == (4, 3, 1)

    async def test_verify_fails_when_a_balance_is_tampered_with(self, store, path):
        """A balance changed behind the ledger's back is reported, naming the contract and the numbers."""
        await self.apply(store, request("2000001"))
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("UPDATE contracts SET balance = 5 WHERE id = 'K-FIVE'")
            conn.commit()
        report = await store.verify()
        assert not report.ok
        assert report.problems == ["K-FIVE: opening 5 - deducted 1 != balance 5"]

    async def test_verify_fails_when_an_unlimited_contract_was_deducted(self, store, path):
        """A deduction recorded against an unlimited contract is reported."""
        await self.apply(store, request("2000001"))
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("UPDATE entries SET contract_id = 'K-UNLIMITED'")
            conn.commit()
        report = await store.verify()
        assert not report.ok
        assert any("K-UNLIMITED" in p and "unlimited" in p for p in report.problems)

    async def test_verify_fails_when_an_expected_ticket_was_never_applied(self, store):
        """A deductible ticket the ledger never saw is reported by source and ticket."""
        await self.apply(store, request("2000001"))
        report = await store.verify(expected=[("ivr-1", "2000001"), ("ivr-1", "2000009")])
        assert not report.ok
        assert len(report.problems) == 1
        assert "2000009" in report.problems[0]
        assert "ivr-1" in report.problems[0]

    async def test_the_database_refuses_a_negative_balance(self, store, path):
        """Below zero is impossible even by raw SQL: the schema checks it."""
        assert (await store.balances())["K-ZERO"] == (0, 0)
        with contextlib.closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE contracts SET balance = -1 WHERE id = 'K-ZERO'")

    async def test_reopening_keeps_balances_and_entries(self, path):
        """A restart (close, open, load the opening again) keeps balances, and redeliveries still deduct nothing."""
        store = await self.open_store(path)
        await self.apply(store, request("2000001"), request("2000002", contract="K-ONE"))
        await store.close()
        reopened = await SqliteLedgerStore.open(path)
        try:
            await reopened.load_opening(OPENING)
            assert (await reopened.balances())["K-FIVE"] == (5, 4)
            assert (await reopened.balances())["K-ONE"] == (1, 0)
            assert (await reopened.apply([request("2000001")], source="ledger-1", now=NOW)).verdicts == []
            assert await reopened.deducted() == {"K-FIVE": 1, "K-ONE": 1}
            assert (await reopened.verify()).ok
        finally:
            await reopened.close()

    async def test_unsent_until_marked_sent(self, store):
        """Each ledger event stays unsent, in commit order and on its topic, until marked; marking survives a reopen.

        What is read is the event :func:`ledger_event` makes of the verdict, byte for byte, though
        the store keeps only its parts.
        """
        verdicts = await self.apply(store, request("2000001"), request("2000002", contract="K-ZERO"))
        waiting = await store.unsent()
        assert [payload for _, _, payload in waiting] == [
            ledger_event(v, source="ledger-1", time=NOW).to_json() for v in verdicts
        ]
        assert [topic for _, topic, _ in waiting] == [
            "ivr/v1/ledger/incident_deducted",
            "ivr/v1/ledger/deduction_rejected",
        ]
        assert [rowid for rowid, _, _ in waiting] == [1, 2]
        await store.mark_sent([waiting[0][0]], NOW)
        assert [rowid for rowid, _, _ in await store.unsent()] == [waiting[1][0]]
        await store.mark_sent([waiting[1][0]], NOW)
        assert await store.unsent() == []
        assert await store.entries_end() == 2

    async def test_unsent_respects_its_limit(self, store):
        """``unsent(limit)`` gives the oldest ``limit`` events."""
        await self.apply(store, *(request(f"20000{i:02}") for i in range(5)))
        assert len(await store.unsent(limit=2)) == 2

    async def test_unsent_after_a_rowid_starts_after_it(self, store):
        """``unsent(after=r)``: the oldest unannounced events after entry ``r`` (the announcer's place in a run)."""
        await self.apply(store, *(request(f"20000{i:02}") for i in range(5)))
        rowids = [rowid for rowid, _, _ in await store.unsent()]
        assert [rowid for rowid, _, _ in await store.unsent(limit=2, after=rowids[1])] == rowids[2:4]
        await store.mark_sent([rowids[3]], NOW)
        assert [rowid for rowid, _, _ in await store.unsent(after=rowids[1])] == [rowids[2], rowids[4]]


class TestLedgerStoreAfterRestart(TestLedgerStore):
    """Every guarantee holds for a store that was closed and opened again before use."""

    open_store = staticmethod(open_after_restart)


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
        assert await store.unsent() == [(2, "ivr/v1/ledger/deduction_rejected", old[1].to_json())]
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
