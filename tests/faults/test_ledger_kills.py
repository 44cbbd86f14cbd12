"""`ivr ledger` SIGKILLed again and again during a load run: every deductible ticket deducted exactly once."""

from __future__ import annotations

import asyncio
import random

import pytest

from ivr.load.ledger import verify_ledger
from tests.faults.conftest import assert_ledger_exact, deductible_by_contract, settle, size

pytestmark = pytest.mark.broker

CALLS, KILLS = size(full=(10_000, 20), short=(500, 3))
#: A restart takes 0.4 s idle, 1-1.5 s under load (a new interpreter, the world, the session, its
#: backlog taken before it says online): calls are paced so that every kill lands while they are
#: still coming, with 4 s of calls per kill.
RATE = CALLS / (KILLS * 4)


async def test_the_ledger_killed_at_random_points_deducts_every_ticket_exactly_once(fault_run):
    """SIGKILL the ledger process 20 times (short: 3) during 10,000 calls (short: 500): exact balances, verify OK."""
    launcher, ledger_process, fault_system = fault_run.launcher, fault_run.ledger, fault_run.system
    rng = random.Random(20)
    points = sorted(rng.sample(range(CALLS // 20, CALLS * 9 // 10), KILLS))
    killed_at: list[int] = []

    async def killer():
        for point in points:
            while launcher.completed < point:
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.05))  # anywhere in the ledger's batch cycle
            killed_at.append(launcher.completed)
            await ledger_process.restart(kill=True)

    async with asyncio.timeout(CALLS / RATE + KILLS * 10 + 60):
        await asyncio.gather(launcher.run(CALLS, rate=RATE, concurrency=100), killer())
    await settle(fault_system, timeout=120)

    assert launcher.completed == CALLS, launcher.errors
    assert launcher.failed == 0
    assert ledger_process.starts == KILLS + 1
    assert len(killed_at) == KILLS
    assert killed_at[-1] < CALLS  # every kill landed while calls were running
    expected = await deductible_by_contract(fault_system)
    assert sum(expected.values()) > CALLS // 3
    await ledger_process.stop()
    await assert_ledger_exact(fault_run.ledger_db, fault_run.world, expected)
    verdict = await verify_ledger(fault_run.ledger_db, directory=fault_run.ivr_db)
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections, verdict.problems) == (sum(expected.values()), 0, 0)
