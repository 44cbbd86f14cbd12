"""Fixtures for end-to-end tests over a real Mosquitto that each test owns.

These tests stop, restart and kill things, so every test gets a private broker on a free loopback
port (never the shared 127.0.0.1:1883) and its own SQLite files in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import textwrap
import uuid
from contextlib import asynccontextmanager

import pytest

from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.mqtt import MqttBus
from ivr.callers import ScriptedCaller
from ivr.clock import VirtualClock
from ivr.events import CloudEvent, EventType
from ivr.subprocesses import end_process
from tests.conftest import REPO, TUESDAY_10AM, steps_from

#: Bound on every wait: long enough for a loaded CI machine, short enough to fail a test.
WAIT = 20.0

pytestmark = pytest.mark.broker


@pytest.fixture
async def private_broker(tmp_path):
    """A private Mosquitto with persistence in tmp_path, so a restart keeps sessions and queues."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    persist = tmp_path / "broker"
    persist.mkdir()
    async with EmbeddedBroker(persistence_dir=persist) as broker:
        yield broker


@pytest.fixture
def big_world_file(tmp_path):
    """A world with one contract of 100,000 incidents and one support code, for long runs."""
    path = tmp_path / "big.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            customers:
              - {id: C-BIG, name: Big Co, kind: consumer, caller_numbers: ["+15550300000"]}
            contracts:
              - id: K-BIG
                customer: C-BIG
                plan: premier
                incidents: 100000
                valid_from: 2026-01-01
                valid_until: 2027-12-31
            support_codes:
              - {code: "9000000001", contract: K-BIG}
            """
        )
    )
    return path


CODE_CALL = ["2", "1", "2", "9000000001#", "3"]  # technical, consumer, support code, severity C


async def run_call(system, script, *, number="+15550300000", start=TUESDAY_10AM, call_id=None):
    """One scripted call on its own virtual clock."""
    clock = VirtualClock(start=start)
    return await system.engine.run_call(
        ScriptedCaller(steps_from(script), clock=clock), clock=clock, number=number, call_id=call_id
    )


@asynccontextmanager
async def collector(config, topic_filter, *, client_id):
    """A persistent-session subscriber gathering what it receives (QoS 1), by event id."""
    seen: dict[str, list[dict]] = {}
    bus = MqttBus(config=config, client_id=client_id, subscriptions=[topic_filter], persistent=True)

    async def gather():
        async for delivery in bus.deliveries():
            if "/status/" in delivery.topic:
                continue
            event = json.loads(delivery.payload)
            # Events are keyed by id (a repeat lands on its first copy); anything else by arrival.
            key = event.get("id") or f"{delivery.topic}#{len(seen)}"
            seen.setdefault(key, []).append(event)

    async with bus:
        await bus.wait_connected()
        task = asyncio.create_task(gather())
        try:
            yield seen
        finally:
            task.cancel()


async def retained(config, topic_filter) -> dict[str, bytes]:
    """The retained messages under ``topic_filter`` now, by topic, with no wait for ones that are not there.

    Mosquitto sends a SUBSCRIBE's retained messages filter by filter, in the packet's order: a
    retained marker of our own, subscribed to after ``topic_filter``, arrives after all of its.
    """
    marker = f"ivr-test-marker/{uuid.uuid4().hex[:12]}"
    found: dict[str, bytes] = {}
    async with MqttBus(config=config) as publisher:
        await asyncio.wait_for(publisher.wait_connected(), WAIT)
        await publisher.publish(marker, b"end", retain=True)
        async with MqttBus(config=config, subscriptions=[topic_filter, marker]) as bus, asyncio.timeout(WAIT):
            async for delivery in bus.deliveries():
                if delivery.topic == marker:
                    break
                found[delivery.topic] = delivery.payload
        await publisher.publish(marker, b"", retain=True)
    return found


def ticket_event(ticket, *, event_id=None, contract="K-ANNA-STD", customer="C-ANNA", source="ivr-dup"):
    """A valid ivr.ticket.created event asking for one deduction, as IVR ``source`` would send it."""
    return CloudEvent(
        **({"id": event_id} if event_id else {}),
        type=EventType.TICKET_CREATED.value,
        source=source,
        subject=f"call-{ticket}",
        time=TUESDAY_10AM.isoformat(),
        sequence=3,
        data={
            "ticket": ticket,
            "method": "support_code",
            "caller_kind": "consumer",
            "purpose": "technical",
            "severity": "C",
            "customer": customer,
            "contract": contract,
            "rule": "R4",
            "deduct": True,
        },
    )


IVR = [sys.executable, "-m", "ivr"]


async def ivr(*args: str, timeout: float = WAIT) -> tuple[int, str]:
    """Run `ivr ARGS` to its end (at most ``timeout`` s, else the test fails): its exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        *IVR, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        await end_process(proc, signal.SIGKILL)
        pytest.fail(f"`ivr {' '.join(args)}` still running after {timeout:g} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def replay_every_scenario(url: str) -> None:
    """`ivr replay scenarios --broker URL`: every shipped scenario passes and it exits 0."""
    status, out = await ivr("replay", str(REPO / "scenarios"), "--broker", url, timeout=120)
    assert status == 0, out
    summary = re.search(r"(\d+) passed, (\d+) failed \((\d+) scenarios", out)
    assert summary is not None, out
    passed, failed, total = map(int, summary.groups())
    assert (failed, passed) == (0, total)
    assert total >= 90  # the whole shipped suite, not a folder of it
