"""The fault suite's sizes and shared parts: a seeded world, planned calls, `ivr ledger` as a process.

``IVR_FAULTS=short`` (the default, what ``make test`` runs) scales every fault down so the whole
suite takes about a minute; ``IVR_FAULTS=full`` (``make faults``) runs the sizes of
``docs/reliability.md``. The private broker and the persistent collector are the ones
``tests/integration`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivr.bootstrap import build_system
from ivr.load.launch import Launcher
from ivr.load.ledger import LedgerProcess
from ivr.load.mix import CallKind, Mix
from ivr.load.plan import Planner
from ivr.load.world import Catalog, synthetic_world, write_fixture
from ivr.stores import Store, in_schema, open_ledger, parse_store_url
from tests.conftest import TUESDAY_10AM
from tests.integration.conftest import WAIT, collector, ivr, private_broker
from tests.pgserver import fresh_schema

__all__ = ["WAIT", "collector", "private_broker"]  # re-used from tests/integration

MODE = os.environ.get("IVR_FAULTS", "short")
if MODE not in ("short", "full"):
    msg = f"IVR_FAULTS must be short or full, not {MODE!r}"
    raise ValueError(msg)
FULL = MODE == "full"
#: Where a fault test that runs on both keeps its state (``fault_backend``).
BACKENDS = ("sqlite", "postgresql")
SOURCE = "ivr-faults"

#: Mostly calls that create a ticket and ask the ledger to deduct: the faults are about deductions.
DEDUCTING = Mix(
    weights={
        CallKind.SUPPORT_CODE: 6,
        CallKind.LICENSE_KEY: 2,
        CallKind.TICKET: 1,
        CallKind.SALES: 1,
        CallKind.WRONG_CODE: 1,
    },
    no_input_share=0.0,
)


def size(*, full: Any, short: Any) -> Any:
    """The full size under ``IVR_FAULTS=full``, the short one otherwise."""
    return full if FULL else short


@pytest.fixture(scope="session")
def fault_world():
    """A seeded world of 60 customers with large allowances (never mutated)."""
    return synthetic_world(seed=2026, customers=60)


@pytest.fixture
def fault_world_file(fault_world, tmp_path):
    """The world as the fixture file `ivr ledger --fixture` reads."""
    path = tmp_path / "world.yaml"
    write_fixture(fault_world, path)
    return path


@pytest.fixture
def fault_backend(request):
    """Where the IVR and the ledger keep their state: sqlite (files in tmp_path, the default) or postgresql.

    A test runs on PostgreSQL too by ``@pytest.mark.parametrize("fault_backend", BACKENDS, indirect=True)``.
    """
    return getattr(request, "param", "sqlite")


@pytest.fixture
def fault_store(fault_backend, request):
    """``None`` on SQLite; on PostgreSQL the URL of a schema of the test's own (the IVR's and the ledger's).

    ``postgresql-own`` puts that schema on the module's own cluster (``private_postgres``), which
    the test may restart.
    """
    if fault_backend == "sqlite":
        return None
    own = fault_backend == "postgresql-own"
    url = request.getfixturevalue("private_postgres").url if own else request.getfixturevalue("postgres_url")
    schema = fresh_schema()

    async def make() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()

    asyncio.run(make())
    return in_schema(Store(dsn=url), schema)


@pytest.fixture
async def ledger_process(private_broker, tmp_path, fault_world_file, fault_store):
    """`ivr ledger` as its own process on tmp_path/ledger.db (or the test's schema), started; stopped at the end."""
    ledger = LedgerProcess(
        config=private_broker.config,
        db=fault_store.dsn if fault_store else tmp_path / "ledger.db",
        fixture=fault_world_file,
        client_id="fault-ledger",
        source="fault-ledger",
        log_file=tmp_path / "ledger.log",
    )
    await ledger.start()
    yield ledger
    await ledger.stop()


@pytest.fixture
async def fault_system(private_broker, fault_world, tmp_path, ledger_process, fault_store):
    """The IVR over the private broker, its ledger the separate process."""
    system = await build_system(
        world=fault_world,
        workdir=tmp_path,
        source=SOURCE,
        broker=private_broker.config,
        own_ledger=False,
        store=fault_store,
    )
    yield system
    await system.close()


@dataclass
class FaultRun:
    """Everything a fault test works on: the broker, the IVR, the ledger process and the calls."""

    broker: Any
    system: Any
    ledger: LedgerProcess
    launcher: Launcher
    world: Any
    workdir: Any
    store: Store | None = None

    @property
    def ledger_db(self):
        """The ledger process's SQLite file, or the PostgreSQL URL of its store."""
        return self.store.dsn if self.store else self.workdir / "ledger.db"

    @property
    def ivr_db(self):
        """The IVR's SQLite file (its directory and outbox), or the PostgreSQL URL of its store."""
        return self.store.dsn if self.store else self.workdir / "ivr.db"


@pytest.fixture
def fault_run(private_broker, fault_system, ledger_process, fault_world, tmp_path, fault_store):  # noqa: PLR0913, PLR0917
    """Planned calls (the deducting mix, seed 2026) through the fault system, on virtual clocks."""
    planner = Planner(seed=2026, mix=DEDUCTING, catalog=Catalog.of(fault_world))
    launcher = Launcher(engine=fault_system.engine, planner=planner, call_prefix="fault", start=TUESDAY_10AM)
    return FaultRun(
        broker=private_broker,
        system=fault_system,
        ledger=ledger_process,
        launcher=launcher,
        world=fault_world,
        workdir=tmp_path,
        store=fault_store,
    )


class EventWatcher:
    """An engine observer base that watches nothing; subclasses override :meth:`on_event`."""

    def on_event(self, _call, _event):
        """An event was emitted."""

    def on_transition(self, _call, _trigger, _source, _dest):
        """Not watched."""

    def on_prompt(self, _call, _heard):
        """Not watched."""

    def on_decision(self, _call, _decision):
        """Not watched."""


async def settle(system, *, timeout: float) -> None:
    """Wait (bounded) until the outbox is drained and the ledger has answered every deductible ticket."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await system.settle()
            except TimeoutError:
                continue  # System.settle gives up after 30 s; the outer timeout is the bound
            return


async def deductible_by_contract(system) -> Counter[str]:
    """How many deductible tickets the IVR created, by contract, from its outbox."""
    counts: Counter[str] = Counter()
    for source, _, ticket in await system.directory.deductible_tickets():
        if source == SOURCE:
            found = await system.directory.find_ticket(ticket)
            counts[found.ticket.contract_id] += 1
    return counts


async def assert_ledger_exact(db, world, expected: Counter[str]) -> None:
    """The ledger's store holds one deduction per deductible ticket, balances exact, nothing unpublished."""
    store = await open_ledger(parse_store_url(str(db)))
    try:
        assert await store.deducted() == dict(expected)
        balances = await store.balances()
        for contract_id, contract in world.contracts.items():
            opening = contract.incidents
            assert balances[contract_id] == (opening, None if opening is None else opening - expected[contract_id])
        entries = await store.entries()
        assert len(entries) == sum(expected.values())
        assert len({(e.source, e.ticket_id) for e in entries}) == len(entries)
        assert all(e.outcome == "deducted" for e in entries)
        assert await store.unsent() == []
    finally:
        await store.close()


def assert_exactly_once(status: int, out: str, *, calls: int) -> None:
    """`ivr load --json` exited 0, every call completed, each deductible ticket deducted once, verify passed."""
    assert status == 0, out
    start = re.search(r"^\{$", out, re.MULTILINE)  # the report, after any log lines and before others
    assert start is not None, out
    report, _ = json.JSONDecoder().raw_decode(out, start.start())
    assert report["completed"] == calls
    assert report["deducted"] == report["deductible"] > 0
    assert report["verify"]["ok"] is True
    assert report["verify"]["problems"] == 0
    assert report["exactly_once"] is True


#: How long `ivr load` may take to start deducting before a fault test gives up on it.
_CALLS_BEGIN = 60.0


def ledger_entries(db: Path) -> int:
    """How many deductions and rejections the ledger on the SQLite file ``db`` has committed."""
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        return count


async def load_through_a_broker_fault(  # noqa: PLR0913 - the run's shape, each a keyword
    tmp_path,
    *,
    ivr_broker,
    ledger_broker,
    fault: Callable[[LedgerProcess], Awaitable[None]],
    calls: int,
    rate: int,
    kill_after: float,
    seed: int = 7,
    customers: int = 300,
) -> tuple[int, str, LedgerProcess]:
    """`ivr load` on ``ivr_broker`` against an `ivr ledger` process on ``ledger_broker``, ``fault`` run partway.

    ``fault(ledger)`` starts ``kill_after`` seconds into the calls (checked: the run is still
    going) and returns once the broker is back. The exit status and output of `ivr load --json`,
    and the (stopped) ledger, for :func:`assert_exactly_once` and the test's own checks.
    """
    world = tmp_path / "world.yaml"
    status, out = await ivr("load", "--write-world", str(world), "--seed", str(seed), "--customers", str(customers))
    assert status == 0, out
    ledger = LedgerProcess(
        config=ledger_broker,
        db=tmp_path / "ledger.db",
        fixture=world,
        client_id="ivr-ledger",
        source="ivr-ledger",
        log_file=tmp_path / "ledger.log",
    )
    await ledger.start()
    try:
        run = asyncio.create_task(
            ivr(
                "load", "--calls", str(calls), "--rate", str(rate), "--seed", str(seed),
                "--customers", str(customers), "--broker", ivr_broker.url, "--ledger-running",
                "--ledger-db", str(ledger.db), "--workdir", str(tmp_path / "run"), "--no-progress", "--json",
                timeout=calls / rate + 120.0,
            )
        )  # fmt: skip
        # The calls begin once `ivr load` has started its IVR and relay, which on a busy machine
        # takes seconds: counted from the first deduction, the fault comes mid-run, not mid-start.
        async with asyncio.timeout(_CALLS_BEGIN):
            while not ledger_entries(ledger.db) and not run.done():
                await asyncio.sleep(0.05)
        await asyncio.sleep(kill_after)
        assert not run.done(), "the run ended before the fault: make it longer"
        await fault(ledger)
        status, out = await run
    finally:
        await ledger.stop()
    return status, out, ledger
