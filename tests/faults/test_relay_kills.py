"""`ivr relay` SIGKILLed during a load run: it resumes from its progress file and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import random

import pytest

from ivr.bootstrap import build_system
from ivr.directory.relayed import PROGRESS_FILE, relayed_up_to
from ivr.load.launch import Launcher
from ivr.load.ledger import verify_ledger
from ivr.load.plan import Planner
from ivr.load.process import RelayProcess
from ivr.load.world import Catalog
from tests.conftest import TUESDAY_10AM
from tests.faults.conftest import DEDUCTING, SOURCE, assert_ledger_exact, deductible_by_contract, settle, size

pytestmark = pytest.mark.broker

CALLS, KILLS = size(full=(5_000, 10), short=(400, 2))
RATE = CALLS / (KILLS * 2.5)  # every kill lands while calls are still coming


async def test_the_relay_killed_at_random_points_loses_and_doubles_nothing(
    private_broker, ledger_process, fault_world, tmp_path
):
    """SIGKILL `ivr relay` 10 times (short: 2) during 5,000 calls (short: 400): exact balances, outbox all published."""
    system = await build_system(
        world=fault_world, workdir=tmp_path, source=SOURCE, broker=private_broker.config, own_ledger=False, relay=True
    )
    relay = RelayProcess(
        config=private_broker.config, db=tmp_path / "ivr.db", instance="fault-relay", log_file=tmp_path / "relay.log"
    )
    try:
        await relay.start()
        planner = Planner(seed=2026, mix=DEDUCTING, catalog=Catalog.of(fault_world))
        launcher = Launcher(engine=system.engine, planner=planner, call_prefix="relay", start=TUESDAY_10AM)
        rng = random.Random(7)
        points = sorted(rng.sample(range(CALLS // 10, CALLS * 9 // 10), KILLS))
        progress_at_kill: list[int] = []

        async def killer():
            for point in points:
                while launcher.completed < point:
                    await asyncio.sleep(0.005)
                await asyncio.sleep(rng.uniform(0, 0.02))  # anywhere between a publish and its record
                progress_at_kill.append(await relayed_up_to(tmp_path / PROGRESS_FILE))
                await relay.restart(kill=True)

        async with asyncio.timeout(CALLS / RATE + KILLS * 10 + 60):
            await asyncio.gather(launcher.run(range(CALLS), rate=RATE, concurrency=100), killer())
        await settle(system, timeout=120)  # the link waits for the relay's progress to reach the outbox's end

        assert launcher.completed == CALLS, launcher.errors
        assert relay.starts == KILLS + 1
        assert progress_at_kill == sorted(progress_at_kill)
        assert progress_at_kill[-1] > 0  # the kills landed while the relay was publishing
        assert await relayed_up_to(tmp_path / PROGRESS_FILE) == await system.directory.outbox_end()
        expected = await deductible_by_contract(system)
        assert sum(expected.values()) > CALLS // 3
    finally:
        await relay.stop()
        await system.close()
    await ledger_process.stop()
    await assert_ledger_exact(tmp_path / "ledger.db", fault_world, expected)
    verdict = await verify_ledger(tmp_path / "ledger.db", directory=tmp_path / "ivr.db")
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections, verdict.problems) == (sum(expected.values()), 0, 0)
