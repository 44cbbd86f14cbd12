"""The PostgreSQL store measured: which driver, how fast a lookup, how many deductions a second.

1. per-lookup latency of the directory's support-code lookup (the JOIN of ``find_code``), one
   after another on one connection, asyncpg against psycopg 3 (async, binary), in alternating
   rounds so that both see the same machine;
2. the same lookup through each directory adapter (``SqliteDirectory``, ``PostgresDirectory``);
3. the ledger's store applying batches of 1,000 requests: deductions per second, SQLite file
   against PostgreSQL;
4. end to end, ``ivr load --calls N`` on SQLite, on PostgreSQL, and with two IVR processes on
   PostgreSQL, in alternating rounds: calls per second, and the ratio to SQLite's in the round.

Needs a PostgreSQL server (``--url``, default the one on 127.0.0.1:5432) and, for the driver
comparison, psycopg (``pip install -e '.[bench]'``; without it that part is left out, saying so).
Each run works in a schema of its own, dropped at the end.

    .venv/bin/python benchmarks/stores.py [--url URL] [--lookups N] [--rounds N] [--deductions N] [--calls N]
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

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
    import psycopg  # noqa: PLC0415 - optional: the bench extra

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
        with_psycopg = importlib.util.find_spec("psycopg") is not None
        if not with_psycopg:
            print("psycopg is not installed (pip install -e '.[bench]'): asyncpg alone")
        timings: dict[str, list[float]] = {"asyncpg": [], "psycopg": []} if with_psycopg else {"asyncpg": []}
        for _ in range(args.rounds):
            timings["asyncpg"].append(await asyncpg_lookups(args.url, schema, key, args.lookups))
            if with_psycopg:
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


def end_to_end(url: str, calls: int, rounds: int) -> None:
    """``ivr load`` on SQLite, on PostgreSQL, and two IVRs on PostgreSQL, alternating; calls/s each."""
    runs = {"SQLite": [], "PostgreSQL": ["--store", url], "PostgreSQL, 2 IVRs": ["--workers", "2", "--store", url]}
    print(f"end to end, ivr load --calls {calls}, {rounds} alternating rounds (calls/s; ratio to SQLite's):")
    for n in range(rounds):
        rates = {}
        for name, extra in runs.items():
            done = subprocess.run(  # noqa: S603 - our own command
                [sys.executable, "-m", "ivr", "load", "--calls", str(calls), "--json", "--no-progress", *extra],
                capture_output=True,
                text=True,
                check=False,
            )
            report = json.loads(done.stdout) if done.returncode == 0 else None
            rates[name] = report["calls_per_s"] if report and report["exactly_once"] else 0.0
        line = ", ".join(f"{name} {rate:,.0f} ({rate / rates['SQLite']:.0%})" for name, rate in rates.items())
        print(f"  round {n + 1}: {line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deductions", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=3000, help="calls per ivr load run (0: no end-to-end runs)")
    parsed = parser.parse_args()
    asyncio.run(main(parsed))
    if parsed.calls:
        end_to_end(parsed.url, parsed.calls, rounds=2)
