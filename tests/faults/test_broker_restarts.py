"""Mosquitto restarted during a load run: calls go on, and no event is lost on the way to anyone."""

from __future__ import annotations

import asyncio

import pytest

from ivr.load.ledger import verify_ledger
from tests.faults.conftest import (
    WAIT,
    EventWatcher,
    assert_ledger_exact,
    collector,
    deductible_by_contract,
    settle,
    size,
)

pytestmark = pytest.mark.broker

CALLS = size(full=5_000, short=500)
RESTARTS = 3
#: How long the broker stays down each time: calls must keep completing meanwhile.
OUTAGE = 0.5
RATE = CALLS / 6


class EventIds(EventWatcher):
    """Keeps the id of every event the calls emit (what the outbox will hold)."""

    def __init__(self):
        """No event yet."""
        self.ids: set[str] = set()

    def on_event(self, _call, event):
        """One more id."""
        self.ids.add(event.id)


async def test_broker_restarted_three_times_loses_no_event_and_calls_go_on(fault_run):
    """3 Mosquitto restarts in 5,000 calls (short: 500): every event reaches a persistent subscriber; ledger exact."""
    private_broker, fault_system, launcher = fault_run.broker, fault_run.system, fault_run.launcher
    emitted = EventIds()
    fault_system.engine.observers.append(emitted)
    during_outages: list[int] = []
    async with collector(private_broker.config, "ivr/v2/#", client_id="fault-restart-watch") as seen:

        async def restarter():
            for n in range(1, RESTARTS + 1):
                while launcher.completed < CALLS * n // (RESTARTS + 1):
                    await asyncio.sleep(0.005)
                before = launcher.completed
                await private_broker.stop()  # SIGTERM: Mosquitto saves its sessions and queues
                await asyncio.sleep(OUTAGE)
                during_outages.append(launcher.completed - before)
                await private_broker.start()

        async with asyncio.timeout(CALLS / RATE + 60):
            await asyncio.gather(launcher.run(range(CALLS), rate=RATE, concurrency=100), restarter())
        await settle(fault_system, timeout=120)

        assert launcher.completed == CALLS, launcher.errors
        assert launcher.failed == 0
        assert len(during_outages) == RESTARTS
        assert all(n > 0 for n in during_outages), during_outages  # calls completed while the broker was down
        assert await fault_system.directory.unsent(10) == []
        try:
            async with asyncio.timeout(WAIT):
                while not emitted.ids <= seen.keys():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            missing = emitted.ids - seen.keys()
            pytest.fail(f"{len(missing)} of {len(emitted.ids)} events never reached the persistent subscriber")
    assert len(emitted.ids) > CALLS * 3
    expected = await deductible_by_contract(fault_system)
    await fault_run.ledger.stop()
    await assert_ledger_exact(fault_run.ledger_db, fault_run.world, expected)
    verdict = await verify_ledger(fault_run.ledger_db, directory=fault_run.ivr_db)
    assert verdict.ok, verdict.output
