"""One contract for every LedgerStorage: the same tests on an SQLite file and on a real PostgreSQL.

Exactly one deduction per ticket, never below zero, conflicts reported, announcements in order
until marked (R7). ``LedgerStoreContract`` holds the tests; each backend subclasses it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import replace

import asyncpg
import pytest

from ivr.events import CloudEvent, EventType
from ivr.ledger.core import DeductionRequest, Outcome, ledger_event
from ivr.ledger.postgres import PostgresLedgerStore
from ivr.ledger.storage import Applied
from ivr.ledger.store import SqliteLedgerStore
from tests.pgserver import fresh_schema

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


async def announced(store):
    """The ledger events the store has yet to publish, as the announcer reads them."""
    return [CloudEvent.from_dict(json.loads(payload)) for _, _, payload in await store.unsent()]


class LedgerStoreContract:
    """What every ledger store must do (R7).

    Subclasses give ``open_backend`` (an async callable opening the test's store, the same each
    call), ``open_other`` (another, empty store), ``tamper`` (raw SQL on the test's store, tables
    named ``{contracts}`` and ``{entries}``) and ``integrity_error`` (what the database raises
    for a broken CHECK). With ``restart`` the store is closed and opened again before use.
    """

    restart = False
    integrity_error: type[Exception] = Exception

    async def open_store(self, open_backend):
        """A store with the opening balances loaded (after a restart if ``restart``)."""
        store = await open_backend()
        await store.load_opening(OPENING)
        if self.restart:
            await store.close()
            store = await open_backend()
            await store.load_opening(OPENING)
        return store

    @pytest.fixture
    async def store(self, open_backend):
        """The test's store, closed after the test."""
        store = await self.open_store(open_backend)
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

    async def test_ledger_event_ids_are_stable_for_a_request(self, store, open_other):
        """A ledger event's id derives from its request, so a re-sent announcement is the same event."""
        await self.apply(store, request("2000001"))
        other = await open_other()
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

    async def test_verify_fails_when_a_balance_is_tampered_with(self, store, tamper):
        """A balance changed behind the ledger's back is reported, naming the contract and the numbers."""
        await self.apply(store, request("2000001"))
        await tamper("UPDATE {contracts} SET balance = 5 WHERE id = 'K-FIVE'")
        report = await store.verify()
        assert not report.ok
        assert report.problems == ["K-FIVE: opening 5 - deducted 1 != balance 5"]

    async def test_verify_fails_when_an_unlimited_contract_was_deducted(self, store, tamper):
        """A deduction recorded against an unlimited contract is reported."""
        await self.apply(store, request("2000001"))
        await tamper("UPDATE {entries} SET contract_id = 'K-UNLIMITED'")
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

    async def test_the_database_refuses_a_negative_balance(self, store, tamper):
        """Below zero is impossible even by raw SQL: the schema checks it."""
        assert (await store.balances())["K-ZERO"] == (0, 0)
        with pytest.raises(self.integrity_error):
            await tamper("UPDATE {contracts} SET balance = -1 WHERE id = 'K-ZERO'")

    async def test_reopening_keeps_balances_and_entries(self, open_backend):
        """A restart (close, open, load the opening again) keeps balances, and redeliveries still deduct nothing."""
        store = await self.open_store(open_backend)
        await self.apply(store, request("2000001"), request("2000002", contract="K-ONE"))
        await store.close()
        reopened = await open_backend()
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
            "ivr/v2/ledger/incident_deducted",
            "ivr/v2/ledger/deduction_rejected",
        ]
        assert waiting[0][0] < waiting[1][0]
        await store.mark_sent([waiting[0][0]], NOW)
        assert [rowid for rowid, _, _ in await store.unsent()] == [waiting[1][0]]
        await store.mark_sent([waiting[1][0]], NOW)
        assert await store.unsent() == []

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

    async def test_unsent_of_one_ledger_is_only_what_it_applied(self, store):
        """``unsent(ledger=L)``: the entries L applied, in order, so ledgers on one store never announce one twice."""
        await store.apply([request("2000001"), request("2000003")], source="ledger-1", now=NOW)
        await store.apply([request("2000002"), request("2000004", contract="K-ZERO")], source="ledger-2", now=NOW)
        every = await store.unsent()
        ones, twos = await store.unsent(ledger="ledger-1"), await store.unsent(ledger="ledger-2")
        assert [json.loads(p)["source"] for _, _, p in ones] == ["ledger-1", "ledger-1"]
        assert [json.loads(p)["data"]["ticket"] for _, _, p in twos] == ["2000002", "2000004"]
        assert sorted(ones + twos) == sorted(every)
        assert [r for r, _, _ in await store.unsent(limit=1, after=twos[0][0], ledger="ledger-2")] == [twos[1][0]]
        await store.mark_sent([ones[0][0]], NOW)
        assert await store.unsent(ledger="ledger-1") == ones[1:]
        assert await store.unsent(ledger="ledger-3") == []


class TestSqliteLedgerStore(LedgerStoreContract):
    """The contract on an SQLite file."""

    integrity_error = sqlite3.IntegrityError

    @pytest.fixture
    def open_backend(self, tmp_path):
        """Open the test's file."""
        return lambda: SqliteLedgerStore.open(tmp_path / "ledger.db")

    @pytest.fixture
    def open_other(self, tmp_path):
        """Open another file."""
        return lambda: SqliteLedgerStore.open(tmp_path / "other.db")

    @pytest.fixture
    def tamper(self, tmp_path):
        """Raw SQL on the test's file, from a connection of the test's own."""

        async def run(sql):
            with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
                conn.execute(sql.format(contracts="contracts", entries="entries"))
                conn.commit()

        return run


class TestSqliteLedgerStoreAfterRestart(TestSqliteLedgerStore):
    """Every guarantee holds for a file that was closed and opened again before use."""

    restart = True


class TestPostgresLedgerStore(LedgerStoreContract):
    """The contract on a real PostgreSQL, in a schema of the test's own."""

    integrity_error = asyncpg.CheckViolationError

    @pytest.fixture
    def schema(self):
        """The test's schema."""
        return fresh_schema()

    @pytest.fixture
    def open_backend(self, postgres_url, schema):
        """Open the test's schema."""
        return lambda: PostgresLedgerStore.open(postgres_url, schema=schema)

    @pytest.fixture
    def open_other(self, postgres_url):
        """Open another schema."""
        return lambda: PostgresLedgerStore.open(postgres_url, schema=fresh_schema())

    @pytest.fixture
    def tamper(self, postgres_url, schema):
        """Raw SQL in the test's schema, from a connection of the test's own."""

        async def run(sql):
            conn = await asyncpg.connect(postgres_url, server_settings={"search_path": schema})
            try:
                await conn.execute(sql.format(contracts="ledger_contracts", entries="ledger_entries"))
            finally:
                await conn.close()

        return run


class TestPostgresLedgerStoreAfterRestart(TestPostgresLedgerStore):
    """Every guarantee holds for a schema whose store was closed and opened again before use."""

    restart = True
