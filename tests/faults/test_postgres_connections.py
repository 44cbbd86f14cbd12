"""The ledger on PostgreSQL when the server cuts its connections (pg_terminate_backend): none lost, none doubled."""

from __future__ import annotations

import asyncio

import asyncpg

from ivr.ledger.core import DeductionRequest
from ivr.ledger.postgres import PostgresLedgerStore
from tests.pgserver import fresh_schema

NOW = "2026-11-17T15:00:00+00:00"


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
