"""One contract for every DirectoryStorage: the same tests on an SQLite file and on a real PostgreSQL.

``DirectoryContract`` holds the tests; each backend subclasses it with an ``open_store`` fixture
(as transitions runs ``TestAsync(TestTransitions)``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from ivr.auth.model import Purpose, Severity, Ticket, TicketStatus
from ivr.directory.postgres import PostgresDirectory
from ivr.directory.rows import FIRST_NEW_TICKET
from ivr.directory.sqlite import SqliteDirectory
from ivr.events import CloudEvent, EventType
from ivr.secrets import PepperError
from tests.pgserver import fresh_schema

AT = datetime(2026, 11, 17, 15, tzinfo=UTC)


def balance_event(contract: str, balance: int, *, minutes: int = 0) -> CloudEvent:
    """A ledger event saying ``contract`` is at ``balance``, ``minutes`` after :data:`AT` (before it if negative)."""
    said = event("c", event_type=EventType.LEDGER_INCIDENT_DEDUCTED, contract=contract, balance_after=balance)
    return dataclasses.replace(said, time=(AT + timedelta(minutes=minutes)).isoformat())


def event(call: str, sequence: int = 1, event_type: EventType = EventType.CALL_STARTED, **data) -> CloudEvent:
    """An event of ``call``; a ``call.started`` unless told otherwise."""
    return CloudEvent(
        type=event_type.value,
        source="ivr-test",
        subject=call,
        time=AT.isoformat(),
        sequence=sequence,
        data=data or {"caller": "+15550000001", "started_at": AT.isoformat()},
    )


def ticket(ticket_id: str, contract) -> Ticket:
    """A new open ticket on ``contract``."""
    return Ticket(
        id=ticket_id,
        customer_id=contract.customer_id,
        contract_id=contract.id,
        status=TicketStatus.OPEN,
        purpose=Purpose.TECHNICAL,
        severity=Severity.B,
    )


class DirectoryContract:
    """What every directory store must do; subclasses give ``open_store(pepper=None)``, a fresh store each call."""

    @pytest.fixture
    async def store(self, open_store, world):
        """A store with the default world loaded."""
        opened = await open_store()
        await opened.load(world)
        yield opened
        await opened.close()

    async def test_codes_keys_and_tickets_are_found_with_their_contract_and_balance(self, store, world):
        """Each lookup returns what the fixture says, with the contract's balance; an unknown entry is None."""
        code = next(iter(world.support_codes.values()))
        found = await store.find_code(code.code)
        assert found is not None
        assert found[0] == code
        assert found[1] == world.contracts[code.contract_id]
        assert found[2] == world.contracts[code.contract_id].incidents
        key = next(iter(world.license_keys.values()))
        found_key = await store.find_key(key.key)
        assert found_key is not None
        assert found_key[0] == key
        assert found_key[1] == world.contracts[key.contract_id]
        fixture_ticket = next(iter(world.tickets.values()))
        owned = await store.find_ticket(fixture_ticket.id)
        assert owned is not None
        assert owned.ticket == fixture_ticket
        assert owned.own.contract == world.contracts[fixture_ticket.contract_id]
        assert await store.find_code("9" * 10) is None
        assert await store.find_key("9" * 8) is None
        assert await store.find_ticket("1") is None

    async def test_a_store_made_with_a_configured_pepper_refuses_another(self, open_store, world):
        """Reopened under another pepper, the store says so instead of missing every lookup."""
        first = await open_store(pepper=b"p" * 32)
        await first.load(world)
        await first.close()
        with pytest.raises(PepperError, match="another pepper"):
            await open_store(pepper=b"q" * 32)

    async def test_new_ticket_ids_are_unique_and_above_every_fixture_ticket(self, store, world):
        """A hundred IDs drawn at once: all different, all above the fixture's and from 2000001 up."""
        ids = [int(i) for i in await asyncio.gather(*(store.next_ticket_id() for _ in range(100)))]
        assert len(set(ids)) == 100
        assert min(ids) >= max(FIRST_NEW_TICKET, *(int(t) + 1 for t in world.tickets))

    async def test_failures_are_counted_from_the_instant_asked(self, store):
        """A failure recorded is found from before its instant, not from after it; other numbers have none."""
        await store.record_failure("+15550000009", AT, [event("c1")])
        assert await store.failures("+15550000009", AT - timedelta(minutes=15)) == [AT]
        assert await store.failures("+15550000009", AT + timedelta(seconds=1)) == []
        assert await store.failures("+15550000008", AT - timedelta(minutes=15)) == []

    async def test_a_ticket_that_cannot_be_written_takes_its_events_with_it(self, store, world):
        """A ticket ID already taken: the write fails, and none of its events reach the outbox."""
        contract = next(iter(world.contracts.values()))
        first = ticket(await store.next_ticket_id(), contract)
        kept = event("c1")
        await store.create_ticket(first, call_id="c1", at=AT, events=[kept])
        with pytest.raises(Exception):  # noqa: B017, PT011 - each database names its own integrity error
            await store.create_ticket(first, call_id="c2", at=AT, events=[event("c2")])
        assert [payload for _, _, payload in await store.unsent(10)] == [kept.to_json()]

    async def test_the_outbox_is_read_in_order_after_a_position_and_marked_rows_are_not_read_again(self, store):
        """Events come out in the order written; ``after`` and ``mark_sent`` each leave out what was read."""
        events = [event(f"call-{n}") for n in range(5)]
        for e in events[:2]:
            await store.add_events([e])
        await store.add_events(events[2:])
        rows = await store.unsent(10)
        assert [payload for _, _, payload in rows] == [e.to_json() for e in events]
        assert [topic for _, topic, _ in rows] == [e.topic for e in events]
        positions = [p for p, _, _ in rows]
        assert positions == sorted(positions)
        assert len(set(positions)) == 5
        assert await store.outbox_end() == positions[-1]
        assert [p for p, _, _ in await store.unsent(10, after=positions[1])] == positions[2:]
        await store.mark_sent(positions[:3], AT.isoformat())
        assert [p for p, _, _ in await store.unsent(10)] == positions[3:]

    async def test_a_ledger_event_sets_the_balance_and_an_older_one_does_not_undo_it(self, store, world):
        """The newer ``balance_after`` stands whatever order the two events arrive in."""
        contract = next(c for c in world.contracts.values() if c.incidents)
        await store.take_ledger_events([balance_event(contract.id, 1)])
        await store.take_ledger_events([balance_event(contract.id, 2, minutes=-1)])
        assert await store.balance(contract.id) == 1

    async def test_ledger_events_taken_together_leave_the_newest_balance(self, store, world):
        """In one write, a contract's newest ``balance_after`` stands whichever of the events comes first."""
        contract = next(c for c in world.contracts.values() if c.incidents)
        await store.take_ledger_events([balance_event(contract.id, 1), balance_event(contract.id, 2, minutes=-1)])
        assert await store.balance(contract.id) == 1
        await store.take_ledger_events(
            [balance_event(contract.id, 3, minutes=-2), balance_event(contract.id, 0, minutes=1)]
        )
        assert await store.balance(contract.id) == 0

    async def test_a_ledger_event_naming_no_contract_or_no_whole_balance_is_passed_over(self, store, world):
        """Odd ledger events take nothing and stop nothing: the well-formed one beside them still counts."""
        contract = next(c for c in world.contracts.values() if c.incidents)
        no_contract = event("c", event_type=EventType.LEDGER_INCIDENT_DEDUCTED, balance_after=0)
        odd_balance = event("c", event_type=EventType.LEDGER_INCIDENT_DEDUCTED, contract=contract.id, balance_after="0")
        await store.take_ledger_events([no_contract, odd_balance, balance_event(contract.id, 1)])
        assert await store.balance(contract.id) == 1

    async def test_deductible_tickets_are_the_ticket_events_that_ask_to_deduct(self, store, world):
        """Only ``ticket.created`` events with ``deduct`` count, with their source, id and ticket."""
        contract = next(iter(world.contracts.values()))
        asks = event("c1", event_type=EventType.TICKET_CREATED, ticket="2000001", contract=contract.id, deduct=True)
        free = event("c2", event_type=EventType.TICKET_CREATED, ticket="2000002", contract=contract.id, deduct=False)
        await store.add_events([asks, event("c1", 2), free])
        assert await store.deductible_tickets() == [("ivr-test", asks.id, "2000001")]

    async def test_the_caller_lock_is_taken_and_let_go_in_turn(self, store):
        """One number's lock taken and let go, then again, and another number's inside the first: no wait, no error."""
        async with asyncio.timeout(5):
            for _ in range(2):
                async with store.caller_lock("+15550000001"), store.caller_lock("+15550000002"):
                    pass


class TestSqliteDirectory(DirectoryContract):
    """The contract on an SQLite file."""

    @pytest.fixture
    def open_store(self, tmp_path):
        """Open the test's file (the same file each time)."""

        async def open_(*, pepper=None):
            return await SqliteDirectory.open(tmp_path / "ivr.db", pepper=pepper)

        return open_


class TestPostgresDirectory(DirectoryContract):
    """The contract on a real PostgreSQL, in a schema of the test's own."""

    @pytest.fixture
    def open_store(self, postgres_url):
        """Open the test's schema (the same schema each time)."""
        schema = fresh_schema()

        async def open_(*, pepper=None):
            return await PostgresDirectory.open(postgres_url, schema=schema, pepper=pepper)

        return open_

    async def test_the_caller_lock_is_held_for_its_body(self, store):
        """A second holder of one number's lock, on another connection, waits for the first to let go."""
        order: list[str] = []
        released = asyncio.Event()

        async def first() -> None:
            async with store.caller_lock("+15550000001"):
                order.append("first in")
                await released.wait()
                order.append("first out")

        async def second() -> None:
            async with store.caller_lock("+15550000001"):
                order.append("second in")

        holder = asyncio.create_task(first())
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        assert order == ["first in"]
        released.set()
        await asyncio.gather(holder, waiter)
        assert set(order) == {"first in", "first out", "second in"}
