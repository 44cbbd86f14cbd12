"""What PostgreSQL decides for several IVR and ledger processes on one database.

- two IVR processes, 50 calls at once from one number: the directory is reached at most 5 times;
- a publisher never skips a row whose transaction commits after later ones;
- ledgers racing on one database deduct each incident once, never below zero;
- ticket IDs from one sequence, whoever draws them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from ivr.directory.postgres import PostgresDirectory
from ivr.ledger.core import DeductionRequest, Outcome
from ivr.ledger.postgres import PostgresLedgerStore
from tests.pgserver import fresh_schema
from tests.storage.guessing_ivr import START
from tests.storage.test_directory_contract import event

WORKER = Path(__file__).with_name("guessing_ivr.py")
REPO = Path(__file__).resolve().parents[2]
GUESSER = "+15550666666"
NOW = "2026-11-17T15:00:00+00:00"


@pytest.fixture
def schema():
    """A schema of the test's own."""
    return fresh_schema()


@pytest.fixture
async def directory(postgres_url, schema, world):
    """A directory in the test's schema, the default world loaded."""
    opened = await PostgresDirectory.open(postgres_url, schema=schema)
    await opened.load(world)
    yield opened
    await opened.close()


async def test_fifty_calls_from_one_number_on_two_ivr_processes_reach_the_directory_at_most_five_times(
    postgres_url, schema, directory
):
    """Two real IVR processes, 25 calls each, all at once from one number: at most 5 lookups, the rest locked out."""
    gate = await asyncpg.connect(postgres_url)
    await gate.execute("SELECT pg_advisory_lock($1)", START)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), postgres_url, schema, f"ivr-{n}", "25",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for n in (1, 2)
    ]  # fmt: skip
    try:
        async with asyncio.timeout(60):
            for proc in procs:
                assert (await proc.stdout.readline()).strip() == b"ready"
            await asyncio.sleep(0.2)  # both are waiting on the lock now
            await gate.close()  # lets go of it: both start together
            outputs = [await proc.communicate() for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    reports = [json.loads(out.splitlines()[-1]) for out, _ in outputs]  # after the log lines
    assert sum(r["calls"] for r in reports) == 50
    assert sum(r["denied"] for r in reports) <= 5
    assert sum(r["stopped"] for r in reports) == 50  # every call denied after its lookup or locked out
    assert len(await directory.failures(GUESSER, datetime(2026, 1, 1, tzinfo=UTC))) <= 5


async def test_a_row_committed_late_is_published_before_the_rows_behind_it_and_none_is_skipped(
    postgres_url, schema, directory
):
    """One transaction holds an outbox row uncommitted while later ones commit: no reader skips it.

    A publisher reading while it is open waits; once it commits, the early row comes first and the
    later ones follow, each once, as a publisher's high-water mark walks them.
    """
    held = await asyncpg.connect(postgres_url, server_settings={"search_path": schema})
    early = event("early")
    try:
        hold = held.transaction()
        await hold.start()
        await held.execute(
            "INSERT INTO outbox (event_id, topic, payload) VALUES ($1, $2, $3)", early.id, early.topic, early.to_json()
        )
        later = [event(f"later-{n}") for n in range(3)]
        for e in later:
            await directory.add_events([e])  # committed, each after the held row was written
        reading = asyncio.ensure_future(directory.unsent(10))
        await asyncio.sleep(0.3)
        assert not reading.done()  # the later rows are committed, but a reader must not pass the held one
        await hold.commit()
        rows = await asyncio.wait_for(reading, 5)
    finally:
        await held.close()
    assert [payload for _, _, payload in rows] == [early.to_json()] + [e.to_json() for e in later]
    published, mark = [], 0
    while batch := await directory.unsent(1, after=mark):  # a publisher's walk, one row at a time
        published += [payload for _, _, payload in batch]
        mark = batch[-1][0]
    assert published == [early.to_json()] + [e.to_json() for e in later]


async def test_a_row_rolled_back_is_never_published_and_holds_nothing_back(postgres_url, schema, directory):
    """The held transaction rolls back instead: the later rows come out, the held one never does."""
    held = await asyncpg.connect(postgres_url, server_settings={"search_path": schema})
    try:
        hold = held.transaction()
        await hold.start()
        await held.execute("INSERT INTO outbox (event_id, topic, payload) VALUES ('x', 'ivr/v2/x', '{}')")
        later = event("later")
        await directory.add_events([later])
        reading = asyncio.ensure_future(directory.unsent(10))
        await asyncio.sleep(0.2)
        assert not reading.done()
        await hold.rollback()
        rows = await asyncio.wait_for(reading, 5)
    finally:
        await held.close()
    assert [payload for _, _, payload in rows] == [later.to_json()]


async def test_two_directories_on_one_database_never_draw_the_same_ticket_id(postgres_url, schema, directory):
    """Two IVRs' directories (pools of their own) drawing 200 IDs at once: 200 different IDs."""
    other = await PostgresDirectory.open(postgres_url, schema=schema)
    try:
        ids = await asyncio.gather(*(d.next_ticket_id() for d in (directory, other) for _ in range(100)))
    finally:
        await other.close()
    assert len(set(ids)) == 200


async def test_an_ivr_publishes_every_ivrs_unsent_rows(postgres_url, schema, directory):
    """One IVR's directory reads the rows another IVR committed and did not publish, so a killed IVR's rows go out."""
    gone = await PostgresDirectory.open(postgres_url, schema=schema)
    try:
        written = [replace(event(f"ivr-a-{n}"), source="ivr-a") for n in range(3)]
        await gone.add_events(written)
    finally:
        await gone.close()  # as a killed IVR: its rows stay unsent
    mine = [replace(event(f"ivr-b-{n}"), source="ivr-b") for n in range(2)]
    await directory.add_events(mine)
    # A row is read once every transaction older than it has ended, on the whole server (other
    # tests' included): read on from the last position, as the publisher does, until all are in.
    read: list[str] = []
    after = 0
    async with asyncio.timeout(30):
        while len(read) < len(written + mine):
            rows = await directory.unsent(10, after=after)
            read += [p for _, _, p in rows]
            if not rows:
                await asyncio.sleep(0.05)
                continue
            after = rows[-1][0]
    assert read == [e.to_json() for e in written + mine]


def request(ticket: str, contract: str = "K-TEN") -> DeductionRequest:
    """A deduction request for ``ticket``."""
    return DeductionRequest(
        source="ivr-1", event_id=f"evt-{ticket}", call_id=f"call-{ticket}", contract_id=contract, ticket_id=ticket
    )


async def test_three_ledgers_racing_on_one_database_deduct_each_incident_once(postgres_url, schema):
    """Three ledger stores apply 60 tickets for 10 incidents, in crossing batches and with redeliveries: 10 deducted."""
    ledgers = [await PostgresLedgerStore.open(postgres_url, schema=schema) for _ in range(3)]
    try:
        await ledgers[0].load_opening({"K-TEN": 10, "K-FIVE": 5})
        tickets = [f"{2_000_001 + n}" for n in range(60)]
        batches = [
            [request(t, "K-TEN" if i % 2 else "K-FIVE") for i, t in enumerate(tickets[k : k + 6])]
            for k in range(0, 60, 6)
        ]
        # Every batch goes to two ledgers at once (a redelivery racing the first delivery).
        results = await asyncio.gather(
            *(
                ledgers[(n + hop) % 3].apply(b, source=f"ledger-{n}", now=NOW)
                for n, b in enumerate(batches)
                for hop in (0, 1)
            )
        )
        verdicts = [v for r in results for v in r.verdicts]
        deducted = [v for v in verdicts if v.outcome is Outcome.DEDUCTED]
        assert len(verdicts) == 60  # each ticket decided once, whichever ledger took it
        assert len({v.request.ticket_id for v in verdicts}) == 60
        assert len(deducted) == 15
        assert await ledgers[1].balances() == {"K-TEN": (10, 0), "K-FIVE": (5, 0)}
        assert await ledgers[2].deducted() == {"K-TEN": 10, "K-FIVE": 5}
        assert (await ledgers[0].verify([("ivr-1", t) for t in tickets])).ok
    finally:
        for ledger in ledgers:
            await ledger.close()
