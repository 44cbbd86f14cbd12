"""Ticket events published twice and garbage on the ledger's topic: no double deduction, all dead-lettered."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from ivr.bus.mqtt import MqttBus
from ivr.events import EventType
from ivr.load.ledger import verify_ledger
from tests.faults.conftest import (
    BACKENDS,
    WAIT,
    EventWatcher,
    assert_ledger_exact,
    collector,
    deductible_by_contract,
    settle,
    size,
)

pytestmark = pytest.mark.broker

CALLS = size(full=10_000, short=500)
DUPLICATE_SHARE = 0.05
MALFORMED = max(6, CALLS // 100)  # 1 % of the calls, and at least one of each kind below
TOPIC = "ivr/v2/ticket/created/0"


def malformed(n: int, valid: dict) -> tuple[bytes, str]:
    """The ``n``-th malformed message (unique bytes) and a fragment its dead-letter reason must contain."""
    kind = n % 6
    event = json.loads(json.dumps(valid))
    event["id"] = f"malformed-{n}"
    if kind == 0:
        return f"{{not json {n}".encode(), "not JSON"
    if kind == 1:
        del event["data"]["contract"]
        return json.dumps(event).encode(), "contract"
    if kind == 2:
        event["data"]["deduct"] = "yes"
        return json.dumps(event).encode(), "deduct"
    if kind == 3:
        event["type"] = "ivr.ticket.exploded"
        return json.dumps(event).encode(), "unknown event type"
    if kind == 4:
        event["time"] = "2026-02-30T10:00:00Z"
        return json.dumps(event).encode(), "time"
    return json.dumps([n, event]).encode(), "JSON object"


class Duplicator(EventWatcher):
    """Publishes ~5 % of ticket.created events a second time, a moment later."""

    def __init__(self, bus: MqttBus, rng: random.Random):
        """Publish the copies on ``bus``, chosen by ``rng``."""
        self.bus, self.rng = bus, rng
        self.tasks: set[asyncio.Task] = set()
        self.duplicated: set[str] = set()
        self.valid: dict | None = None

    def on_event(self, _call, event):
        """Keep the first ticket event as a template; copy 5 % of them."""
        if event.type != EventType.TICKET_CREATED:
            return
        if self.valid is None:
            self.valid = event.to_dict()
        if self.rng.random() < DUPLICATE_SHARE:
            self.duplicated.add(event.id)
            task = asyncio.get_running_loop().create_task(self.again(event.to_json(), self.rng.uniform(0, 0.05)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def again(self, payload: str, delay: float):
        """Publish ``payload`` again after ``delay`` seconds."""
        await asyncio.sleep(delay)  # before or after the outbox's copy: both orders happen
        await self.bus.publish(TOPIC, payload)


@pytest.mark.parametrize("fault_backend", BACKENDS, indirect=True)
async def test_duplicates_deduct_once_and_every_malformed_message_is_dead_lettered_with_its_reason(fault_run):
    """5 % of ticket events twice, 1 % garbage, 10,000 calls (short: 500): one deduction each, all dead-lettered."""
    config, fault_system, launcher = fault_run.broker.config, fault_run.system, fault_run.launcher
    rng = random.Random(5)
    async with (
        collector(config, "ivr/v2/deadletter", client_id="fault-dead-watch") as dead,
        MqttBus(config=config, client_id="fault-injector") as injector,
    ):
        await injector.wait_connected()
        duplicator = Duplicator(injector, rng)
        fault_system.engine.observers.append(duplicator)
        injected: dict[bytes, str] = {}

        async def inject():
            for n in range(MALFORMED):
                while launcher.completed < CALLS * (n + 1) // (MALFORMED + 1) or duplicator.valid is None:
                    await asyncio.sleep(0.005)
                payload, reason = malformed(n, duplicator.valid)
                injected[payload] = reason
                await injector.publish(TOPIC, payload)

        async with asyncio.timeout(CALLS / 100 + 60):
            await asyncio.gather(launcher.run(range(CALLS), rate=250, concurrency=100), inject())
            while duplicator.tasks:
                await asyncio.wait(set(duplicator.tasks))
        await settle(fault_system, timeout=120)
        async with asyncio.timeout(WAIT):
            while len(dead) < MALFORMED:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a wrong extra dead letter to show up

    assert launcher.completed == CALLS, launcher.errors
    assert launcher.failed == 0
    assert len(duplicator.duplicated) >= max(3, CALLS * 0.5 * DUPLICATE_SHARE * 0.5)
    letters = [copies[0] for copies in dead.values()]
    assert len(letters) == MALFORMED
    assert all(len(copies) == 1 for copies in dead.values())
    for letter in letters:
        original = letter["payload"].encode()
        assert original in injected, letter
        assert injected[original] in letter["reason"], (injected[original], letter["reason"])
        assert letter["topic"] == TOPIC
    assert {letter["payload"].encode() for letter in letters} == set(injected)

    expected = await deductible_by_contract(fault_system)
    await fault_run.ledger.stop()
    await assert_ledger_exact(fault_run.ledger_db, fault_run.world, expected)
    verdict = await verify_ledger(fault_run.ledger_db, directory=fault_run.ivr_db)
    assert verdict.ok, verdict.output
    assert verdict.deductions == sum(expected.values())
