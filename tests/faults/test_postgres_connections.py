"""PostgreSQL cutting the ledger's and the directory's connections (pg_terminate_backend): none lost, none doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from ivr.directory.postgres import PostgresDirectory
from ivr.ledger.core import DeductionRequest
from ivr.ledger.postgres import PostgresLedgerStore
from ivr.load.ledger import verify_ledger
from tests.faults.conftest import assert_ledger_exact, deductible_by_contract, settle, size
from tests.pgserver import fresh_schema
from tests.storage.test_directory_contract import AT, event, ticket

NOW = "2026-11-17T15:00:00+00:00"
T = TypeVar("T")


def request(ticket: int) -> DeductionRequest:
    """A deduction request for ticket ``ticket`` on K-TEN."""
    return DeductionRequest(
        source="ivr-1", event_id=f"evt-{ticket}", call_id=f"call-{ticket}", contract_id="K-TEN", ticket_id=str(ticket)
    )


async def cut_every_connection(url: str) -> int:
    """Terminate every other client connection to the test's database (the store's among them): how many."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
    finally:
        await conn.close()


async def test_connections_cut_between_and_during_batches_lose_and_double_nothing(postgres_url):
    """30 batches, redelivered, the store's connections cut every few: 10 incidents deducted, verify passes."""
    schema = fresh_schema()
    store = await PostgresLedgerStore.open(postgres_url, schema=schema)
    try:
        await store.load_opening({"K-TEN": 10})
        batches = [[request(t) for t in range(k, k + 5)] for k in range(2_000_001, 2_000_151, 5)]
        cut = 0
        for n, batch in enumerate(batches):
            applying = asyncio.ensure_future(store.apply(batch + batches[n - 1], source="ledger", now=NOW))
            if n % 4 == 0:
                cut += await cut_every_connection(postgres_url)
            await applying
        assert cut > 0
        tickets = [(r.source, r.ticket_id) for b in batches for r in b]
        report = await store.verify(tickets)
        assert report.ok, report.problems
        assert (report.deductions, report.rejections) == (10, 140)
        assert await store.balances() == {"K-TEN": (10, 0)}
    finally:
        await store.close()


async def test_the_server_restarted_between_and_during_batches_loses_and_doubles_nothing(private_postgres):
    """The test's own PostgreSQL restarted three times while batches go in: 10 deducted, verify passes."""
    store = await PostgresLedgerStore.open(private_postgres.url, schema=fresh_schema())
    try:
        await store.load_opening({"K-TEN": 10})
        batches = [[request(t) for t in range(k, k + 5)] for k in range(2_000_001, 2_000_101, 5)]
        for n, batch in enumerate(batches):
            applying = asyncio.ensure_future(store.apply(batch + batches[n - 1], source="ledger", now=NOW))
            if n in {3, 9, 15}:
                await asyncio.to_thread(private_postgres.restart)
            await applying
        report = await store.verify([(r.source, r.ticket_id) for b in batches for r in b])
        assert report.ok, report.problems
        assert (report.deductions, report.rejections) == (10, 90)
    finally:
        await store.close()


async def while_running(calls: asyncio.Task, times: int, span: float, fault: Callable[[], Awaitable[T]]) -> list[T]:
    """``fault()`` at ``times`` instants spread evenly over ``span`` seconds from now, while ``calls`` runs.

    Instants are fixed from the start, so a slow fault does not push the later ones past the calls' end.
    """
    loop = asyncio.get_running_loop()
    start, results = loop.time(), []
    for n in range(1, times + 1):
        await asyncio.sleep(max(0.0, start + span * n / (times + 1) - loop.time()))
        if calls.done():
            break
        results.append(await fault())
    return results


async def assert_each_call_once(fault_run, calls: int) -> None:
    """Each call's events and ticket written once, each deductible ticket deducted once, verify passes."""
    conn = await asyncpg.connect(fault_run.store.dsn)
    try:
        events, distinct = await conn.fetchrow("SELECT count(*), count(DISTINCT event_id) FROM outbox")
        tickets, calls_with_one = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT call_id) FROM tickets WHERE call_id IS NOT NULL"
        )
    finally:
        await conn.close()
    assert events == distinct > calls
    assert tickets == calls_with_one > calls // 3
    expected = await deductible_by_contract(fault_run.system)
    await fault_run.ledger.stop()
    await assert_ledger_exact(fault_run.ledger_db, fault_run.world, expected)
    verdict = await verify_ledger(fault_run.ledger_db, directory=fault_run.ivr_db)
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections, verdict.problems) == (sum(expected.values()), 0, 0)


DIRECTORY_CALLS, DIRECTORY_CUTS = size(full=(3_000, 30), short=(300, 5))
#: Calls per second: a cut every ~0.3 s of calls.
DIRECTORY_RATE = DIRECTORY_CALLS / (DIRECTORY_CUTS * 0.4)


@pytest.mark.broker
@pytest.mark.parametrize("fault_backend", ["postgresql"], indirect=True)
async def test_calls_go_on_while_the_directorys_connections_are_cut(fault_run):
    """300 calls (full: 3,000), every connection to the database cut 5 times (full: 30) while they run.

    The directory's lookups, group commits and number locks, the IVR's publisher and the ledger
    process all lose their connections: every call completes, no ticket or event is written
    twice, every deductible ticket is deducted once, `ivr ledger verify` passes.
    """
    launcher, system = fault_run.launcher, fault_run.system
    url = fault_run.store.dsn
    calls = asyncio.create_task(launcher.run(range(DIRECTORY_CALLS), rate=DIRECTORY_RATE, concurrency=100))
    async with asyncio.timeout(120):
        cuts = await while_running(
            calls, DIRECTORY_CUTS, DIRECTORY_CALLS / DIRECTORY_RATE, lambda: cut_every_connection(url)
        )
        await calls
    assert launcher.completed == DIRECTORY_CALLS, launcher.errors
    assert launcher.failed == 0, launcher.errors
    assert len(cuts) == DIRECTORY_CUTS  # every cut landed while calls were running
    assert all(cuts), cuts
    await settle(system, timeout=60)  # the outbox published, every deductible ticket answered
    await assert_each_call_once(fault_run, DIRECTORY_CALLS)


RESTART_CALLS, RESTARTS = size(full=(2_000, 4), short=(300, 2))
#: Calls per second: the run lasts ~2 s a restart, so each restart lands while calls are going.
RESTART_RATE = RESTART_CALLS / (RESTARTS * 2.0)


@pytest.mark.broker
@pytest.mark.parametrize("fault_backend", ["postgresql-own"], indirect=True)
async def test_calls_go_on_while_the_database_restarts(fault_run, private_postgres):
    """300 calls (full: 2,000), the IVR's and the ledger's PostgreSQL restarted twice (full: 4) while they run.

    Every connection of the IVR (directory, number locks, publisher) and of the ledger process is
    cut by the server's fast shutdown and refused until it is back: every call completes, no
    ticket or event is written twice, every deductible ticket is deducted once, and
    `ivr ledger verify` passes.
    """
    launcher, system = fault_run.launcher, fault_run.system
    calls = asyncio.create_task(launcher.run(range(RESTART_CALLS), rate=RESTART_RATE, concurrency=100))
    async with asyncio.timeout(180):
        restarts = await while_running(
            calls, RESTARTS, RESTART_CALLS / RESTART_RATE, lambda: asyncio.to_thread(private_postgres.restart)
        )
        await calls
    assert len(restarts) == RESTARTS  # every restart landed while calls were running
    assert launcher.completed == RESTART_CALLS, launcher.errors
    assert launcher.failed == 0, launcher.errors
    await settle(system, timeout=90)
    await assert_each_call_once(fault_run, RESTART_CALLS)


#: Tries at a COMMIT held for the standby (see the test).
_CUT_TRIES = 20


async def test_a_commit_cut_after_it_took_effect_is_not_written_again(private_postgres, world):
    """The directory's COMMIT committed but its answer cut: the retry asks the server and writes nothing twice.

    PostgreSQL commits locally and then waits for a synchronous standby; with one named that never
    comes, the test's cluster holds the directory's COMMIT there, committed, and the test cuts the
    connection: the client cannot know it committed. (Only the directory's connections ask for the
    standby: ``synchronous_commit`` is ``local`` for every other.)
    """
    schema = fresh_schema()
    directory = await PostgresDirectory.open(private_postgres.url, schema=schema)
    await directory.load(world)
    waiting = await PostgresDirectory.open(f"{private_postgres.url}?synchronous_commit=on", schema=schema)
    contract = next(iter(world.contracts.values()))
    tickets = [ticket(await waiting.next_ticket_id(), contract) for _ in range(_CUT_TRIES)]
    admin = await asyncpg.connect(private_postgres.url)
    await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    await admin.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
    await admin.execute("SELECT pg_reload_conf()")
    try:
        # pg_reload_conf returns before every backend has the new settings: a COMMIT that came
        # first did not wait for the standby, and so was not cut. Such a try is made again.
        for n, new in enumerate(tickets):
            call = f"call-cut-{n}"
            creating = asyncio.ensure_future(waiting.create_ticket(new, call_id=call, at=AT, events=[event(call)]))
            cut = 0
            async with asyncio.timeout(10):
                while not cut and not creating.done():
                    cut = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                    )
                    await asyncio.sleep(0.01)
                await creating
            if cut:
                break
        else:
            pytest.fail(f"no COMMIT of {_CUT_TRIES} waited for the standby: the reload never reached the directory")
        assert (await directory.find_ticket(new.id)) is not None
        written = f"SELECT count(*) FROM {schema}.outbox WHERE payload LIKE $1"  # noqa: S608 - our own schema name
        assert await admin.fetchval(written, f'%"{call}"%') == 1
    finally:
        await admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
        await admin.execute("ALTER SYSTEM RESET synchronous_commit")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()
        await waiting.close()
        await directory.close()
