"""`ivr ledger` SIGKILLed again and again during a load run: every deductible ticket deducted exactly once."""

from __future__ import annotations

import asyncio
import random

import pytest

from ivr.load.ledger import verify_ledger
from tests.faults.conftest import BACKENDS, assert_ledger_exact, deductible_by_contract, settle, size

pytestmark = pytest.mark.broker

CALLS, KILLS = size(full=(10_000, 20), short=(500, 3))
#: Calls per second: a kill lands a tenth to two thirds into a stretch of CALLS / KILLS calls
#: (~2.5 s), so calls are still coming when it does, however long the restart before it took.
RATE = CALLS / (KILLS * 2.5)


@pytest.mark.parametrize("fault_backend", BACKENDS, indirect=True)
async def test_the_ledger_killed_at_random_points_deducts_every_ticket_exactly_once(fault_run):
    """SIGKILL the ledger process 20 times (short: 3) during 10,000 calls (short: 500): exact balances, verify OK.

    On SQLite files and on PostgreSQL (the IVR and the ledger in one schema).
    """
    launcher, ledger_process, fault_system = fault_run.launcher, fault_run.ledger, fault_run.system
    rng = random.Random(20)
    stretch = CALLS // KILLS
    killed_at: list[int] = []
    calls_running: list[bool] = []

    async def calls_with_a_kill(first: int) -> None:
        """One stretch of calls, the ledger SIGKILLed and restarted at a random point inside it.

        A restart takes 0.4 s idle and 1-3 s under load here (a new interpreter, the world, the
        session, its backlog): stretches follow one another, so a slow restart delays the next
        kill instead of pushing it past the last call.
        """
        count = stretch if first + 2 * stretch <= CALLS else CALLS - first
        calls = asyncio.create_task(launcher.run(range(first, first + count), rate=RATE, concurrency=100))
        point = first + rng.randrange(count // 10, count * 2 // 3)
        while launcher.completed < point:
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0, 0.05))  # anywhere in the ledger's batch cycle
        killed_at.append(launcher.completed)
        calls_running.append(not calls.done())
        await ledger_process.restart(kill=True)
        await calls

    async with asyncio.timeout(CALLS / RATE + KILLS * 10 + 60):
        for first in range(0, CALLS - stretch + 1, stretch):
            await calls_with_a_kill(first)
    await settle(fault_system, timeout=120)

    assert launcher.completed == CALLS, launcher.errors
    assert launcher.failed == 0
    assert ledger_process.starts == KILLS + 1
    assert len(killed_at) == KILLS
    assert all(calls_running), killed_at  # every kill landed while calls were still coming
    expected = await deductible_by_contract(fault_system)
    assert sum(expected.values()) > CALLS // 3
    await ledger_process.stop()
    await assert_ledger_exact(fault_run.ledger_db, fault_run.world, expected)
    verdict = await verify_ledger(fault_run.ledger_db, directory=fault_run.ivr_db)
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections, verdict.problems) == (sum(expected.values()), 0, 0)
