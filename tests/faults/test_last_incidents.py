"""200 calls at once on a contract with 10 incidents left: exactly 10 deductions, every other one rejected aloud."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from ivr.auth.model import CallerKind, Channel, Contract, Customer, Plan, SupportCode, SupportHours
from ivr.bootstrap import build_system
from ivr.callers import Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.directory.fixtures import US_EASTERN, World
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess, verify_ledger
from ivr.load.world import write_fixture
from tests.conftest import TUESDAY_10AM
from tests.faults.conftest import WAIT, collector, settle

pytestmark = pytest.mark.broker

CALLS = 200  # the same in short and full: it is one burst
INCIDENTS = 10
CODE = "5550001234"
CODE_CALL = [Press(k) for k in f"212{CODE}#3"]  # technical, consumer, support code, severity C


@pytest.fixture
def race_world():
    """One consumer whose contract has 10 incidents left, and its support code."""
    world = World()
    world.customers["C-RACE"] = Customer(id="C-RACE", name="Race Ltd", kind=CallerKind.CONSUMER)
    world.contracts["K-RACE"] = Contract(
        id="K-RACE",
        customer_id="C-RACE",
        plan=Plan.STANDARD,
        channels=frozenset(Channel),
        incidents=INCIDENTS,
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 12, 31),
        hours=SupportHours(tz=US_EASTERN, always=True),
    )
    world.support_codes[CODE] = SupportCode(code=CODE, contract_id="K-RACE")
    return world


async def test_two_hundred_calls_racing_for_ten_incidents(private_broker, race_world, tmp_path):
    """Exactly 10 deducted, balance 0 and never below; each other ticket rejected with no_incidents_left, announced."""
    config = private_broker.config
    write_fixture(race_world, tmp_path / "race.yaml")
    ledger = LedgerProcess(
        config=config, db=tmp_path / "ledger.db", fixture=tmp_path / "race.yaml", client_id="race-ledger", source="race"
    )
    await ledger.start()
    system = await build_system(world=race_world, workdir=tmp_path, source="ivr-race", broker=config, own_ledger=False)
    try:
        async with collector(config, "ivr/v2/ledger/#", client_id="race-watch") as announced:

            async def call(i):
                clock = VirtualClock(start=TUESDAY_10AM)
                caller = ScriptedCaller(CODE_CALL, clock=clock)
                return await system.engine.run_call(caller, clock=clock, number=f"+1555700{i:04d}")

            records = await asyncio.gather(*(call(i) for i in range(CALLS)))
            await settle(system, timeout=60)
            tickets = sum(1 for r in records if r.call.ticket_id is not None)
            async with asyncio.timeout(WAIT):
                while len(announced) < tickets:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # room for a wrong extra announcement
            events = [copies[0] for copies in announced.values()]
        assert INCIDENTS < tickets <= CALLS  # several calls saw an incident left before the ledger's answers
        denied = [r for r in records if r.call.ticket_id is None]
        assert all(r.call.decisions[-1].reason == "no_incidents" for r in denied)
        deducted = [e for e in events if e["type"] == "ivr.ledger.incident_deducted"]
        rejected = [e for e in events if e["type"] == "ivr.ledger.deduction_rejected"]
        assert len(deducted) == INCIDENTS
        assert len(rejected) == tickets - INCIDENTS
        assert all(e["data"]["reason"] == "no_incidents_left" for e in rejected)
        assert sorted(e["data"]["balance_after"] for e in deducted) == list(range(INCIDENTS))
        assert all(e["data"]["balance_after"] >= 0 for e in events)
        assert await system.directory.balance("K-RACE") == 0
    finally:
        await system.close()
        await ledger.stop()
    store = await SqliteLedgerStore.open(tmp_path / "ledger.db")
    try:
        assert await store.deducted() == {"K-RACE": INCIDENTS}
        assert (await store.balances())["K-RACE"] == (INCIDENTS, 0)
        entries = await store.entries()
        assert len(entries) == tickets
        assert sum(e.outcome == "rejected" for e in entries) == tickets - INCIDENTS
        assert all(e.balance_after is None or e.balance_after >= 0 for e in entries)
    finally:
        await store.close()
    verdict = await verify_ledger(tmp_path / "ledger.db", directory=tmp_path / "ivr.db")
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections) == (INCIDENTS, tickets - INCIDENTS)
