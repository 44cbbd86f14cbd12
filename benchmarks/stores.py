"""The PostgreSQL store measured: which driver, how fast a lookup, how many deductions a second.

1. per-lookup latency of the directory's support-code lookup (the JOIN of ``find_code``), one
   after another on one connection, asyncpg against psycopg 3 (async, binary), in alternating
   rounds so that both see the same machine;
2. the same lookup through each directory adapter (``SqliteDirectory``, ``PostgresDirectory``);
3. the ledger's store applying batches of 1,000 requests: deductions per second, SQLite file
   against PostgreSQL.

Needs a PostgreSQL server (``--url``, default the one on 127.0.0.1:5432) and, for the driver
comparison, psycopg (``pip install -e '.[bench]'``). Each run works in a schema of its own, dropped
at the end.

    .venv/bin/python benchmarks/stores.py [--url URL] [--lookups N] [--rounds N] [--deductions N]
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import psycopg

from ivr import worlds
from ivr.directory.fixtures import load_world
from ivr.directory.postgres import PostgresDirectory
from ivr.directory.rows import WITH_CONTRACT
from ivr.directory.sqlite import SqliteDirectory
from ivr.ledger.core import DeductionRequest
from ivr.ledger.postgres import PostgresLedgerStore
from ivr.ledger.store import SqliteLedgerStore
from ivr.pg import connect_pool, drop_schema
from ivr.secrets import digest

PEPPER = b"benchmark pepper, not a secret!!"


async def asyncpg_lookups(url: str, schema: str, key: bytes, n: int) -> float:
    """Seconds per lookup with asyncpg (a prepared statement, as the pool caches it)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        statement = await conn.prepare(WITH_CONTRACT.format(table="support_codes", p="$1"))
        started = time.perf_counter()
        for _ in range(n):
            await statement.fetchrow(key)
        return (time.perf_counter() - started) / n
    finally:
        await conn.close()


async def psycopg_lookups(url: str, schema: str, key: bytes, n: int) -> float:
    """Seconds per lookup with psycopg 3's async connection (server-side prepared after the first)."""
    async with await psycopg.AsyncConnection.connect(url, options=f"-c search_path={schema}") as conn:
        sql = WITH_CONTRACT.format(table="support_codes", p="%s")
        started = time.perf_counter()
        for _ in range(n):
            async with conn.cursor(binary=True) as cur:
                await cur.execute(sql, (key,), prepare=True)
                await cur.fetchone()
        return (time.perf_counter() - started) / n


async def adapter_lookups(directory: SqliteDirectory | PostgresDirectory, code: str, n: int) -> float:
    """Seconds per ``find_code`` through a directory adapter."""
    started = time.perf_counter()
    for _ in range(n):
        await directory.find_code(code)
    return (time.perf_counter() - started) / n


async def deductions_per_s(store: SqliteLedgerStore | PostgresLedgerStore, n: int) -> float:
    """Deductions a second applying ``n`` requests in batches of 1,000, against 100 contracts."""
    contracts = {f"K-{c:03d}": n for c in range(100)}
    await store.load_opening(contracts)
    names = list(contracts)
    requests = [
        DeductionRequest(
            source="bench", event_id=f"e{i}", call_id=f"c{i}", contract_id=names[i % 100], ticket_id=str(i)
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    for k in range(0, n, 1000):
        await store.apply(requests[k : k + 1000], source="ledger", now="2026-11-17T15:00:00+00:00")
    return n / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    """Measure and print."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    world = load_world(worlds.packaged(worlds.DEFAULT))
    code = next(iter(world.support_codes))
    directory = await PostgresDirectory.open(args.url, schema=schema, pepper=PEPPER)
    try:
        await directory.load(world)
        key = digest(PEPPER, code)
        timings: dict[str, list[float]] = {"asyncpg": [], "psycopg": []}
        for _ in range(args.rounds):
            timings["asyncpg"].append(await asyncpg_lookups(args.url, schema, key, args.lookups))
            timings["psycopg"].append(await psycopg_lookups(args.url, schema, key, args.lookups))
        print(f"per lookup, {args.rounds} alternating rounds of {args.lookups} (median, min-max):")
        for driver, seconds in timings.items():
            us = sorted(s * 1e6 for s in seconds)
            print(f"  {driver:8} {statistics.median(us):6.0f} us  ({us[0]:.0f}-{us[-1]:.0f})")
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = await SqliteDirectory.open(Path(tmp) / "ivr.db", pepper=PEPPER)
            await sqlite.load(world)
            per = {
                "SqliteDirectory": await adapter_lookups(sqlite, code, args.lookups),
                "PostgresDirectory": await adapter_lookups(directory, code, args.lookups),
            }
            await sqlite.close()
            print("find_code through the adapter:")
            for name, seconds in per.items():
                print(f"  {name:18} {seconds * 1e6:6.0f} us")
            ledgers = {
                "SQLite": await SqliteLedgerStore.open(Path(tmp) / "ledger.db"),
                "PostgreSQL": await PostgresLedgerStore.open(args.url, schema=schema),
            }
            print(f"ledger store, {args.deductions} requests in batches of 1,000:")
            for name, store in ledgers.items():
                rate = await deductions_per_s(store, args.deductions)
                await store.close()
                print(f"  {name:10} {rate:8.0f} deductions/s")
    finally:
        await directory.close()
        pool = await connect_pool(args.url, size=1)
        await drop_schema(pool, schema)
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deductions", type=int, default=20000)
    asyncio.run(main(parser.parse_args()))
