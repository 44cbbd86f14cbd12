"""Fixtures for the bus tests: a real broker, per-test topics and client ids, and event makers.

The ``broker`` fixture uses the Mosquitto answering on 127.0.0.1:1883 when there is one (the
developer's or CI's), and otherwise starts a private Mosquitto on a free loopback port. Tests
that stop or reconfigure a broker start their own with ``EmbeddedBroker`` and never touch 1883.
Every test gets its own topic root and client ids (aiomqtt's ``unique_topic()``), so runs on a
shared broker never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from datetime import UTC, datetime

import aiomqtt
import pytest

from ivr.bus.base import Bus, Delivery
from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.url import BrokerConfig
from ivr.events import CloudEvent, EventType

SHARED = BrokerConfig(host="127.0.0.1", port=1883)
#: Bound on every wait in these tests: long enough for a loaded CI machine, short enough to fail.
WAIT = 20.0


def _answers(config: BrokerConfig) -> bool:
    """Whether an anonymous MQTT client can connect at ``config`` (a TCP probe, then a CONNECT)."""
    try:
        with socket.create_connection((config.host, config.port), timeout=0.5):
            pass
    except OSError:
        return False

    async def connect() -> bool:
        try:
            async with aiomqtt.Client(config.host, config.port, timeout=2, protocol=aiomqtt.ProtocolVersion.V311):
                return True
        except aiomqtt.MqttError:
            return False

    return asyncio.run(connect())


@pytest.fixture(scope="session")
def shared_broker() -> BrokerConfig | None:
    """The broker on 127.0.0.1:1883 if one answers anonymously (``IVR_TEST_PRIVATE_BROKER=1``: ignore it)."""
    if os.environ.get("IVR_TEST_PRIVATE_BROKER") == "1":
        return None
    return SHARED if _answers(SHARED) else None


@pytest.fixture(scope="session")
def mosquitto_installed() -> bool:
    """Whether Debian's (or any) mosquitto can be started here."""
    return find_mosquitto() is not None


@pytest.fixture
def needs_mosquitto(mosquitto_installed):
    """Fail a test that starts its own Mosquitto, saying why, when there is none to start."""
    if not mosquitto_installed:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")


@pytest.fixture
async def broker(shared_broker, mosquitto_installed):
    """Where to connect: 127.0.0.1:1883 when a broker answers there, else a private Mosquitto."""
    if shared_broker is not None:
        yield shared_broker
        return
    if not mosquitto_installed:
        pytest.fail(
            "no broker answers on 127.0.0.1:1883 and mosquitto is not installed: "
            "scripts/ensure-mosquitto.sh (run by make test) installs it"
        )
    async with EmbeddedBroker() as embedded:
        yield embedded.config


@pytest.fixture
def unique():
    """A per-test tag for topic roots and client ids."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def root(unique):
    """The test's own topic root, standing in for ``ivr/v2``."""
    return f"ivr-test/{unique}"


@pytest.fixture
def client_id(unique):
    """Client ids unique to this test: ``client_id("ledger")``."""
    return lambda name: f"ivr-test-{unique}-{name}"


def _event(subject: str, sequence: int) -> CloudEvent:
    now = datetime(2026, 11, 17, 15, 0, tzinfo=UTC).isoformat()
    return CloudEvent(
        type=EventType.CALL_STARTED,
        source="ivr-test",
        subject=subject,
        time=now,
        sequence=sequence,
        data={"caller": "+15550100001", "started_at": now},
    )


@pytest.fixture
def calls():
    """Valid events of concurrent calls: ``calls(count, per_call)``, interleaved as the engine writes them."""

    def make(count: int, per_call: int, *, prefix: str = "call") -> list[CloudEvent]:
        return [_event(f"{prefix}-{c:04d}", s) for s in range(1, per_call + 1) for c in range(count)]

    return make


class Inbox:
    """What one bus receives, collected by a task; ``until`` waits (bounded) for a condition."""

    def __init__(self, bus: Bus, *, ack: bool) -> None:
        """Start collecting from ``bus``, acking each delivery if ``ack``."""
        self.items: list[Delivery] = []
        #: Ids of the CloudEvents received, kept as they arrive (a predicate must stay cheap).
        self.event_ids: set[str] = set()
        self._ack = ack
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(bus))

    async def _collect(self, bus: Bus) -> None:
        async for delivery in bus.deliveries():
            if self._ack:
                delivery.ack()
            self.items.append(delivery)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.event_ids.add(json.loads(delivery.payload)["id"])
            self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        """The payloads received, in order."""
        return [d.payload for d in self.items]

    async def until(self, done, timeout: float = WAIT) -> None:
        """Wait until ``done(items)`` holds; fail the test after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not done(self.items):
                self._changed.clear()
                if self._task.done():
                    self._task.result()
                    msg = "the bus stopped delivering"
                    raise AssertionError(msg)
                await self._changed.wait()

    async def count(self, n: int, timeout: float = WAIT) -> list[Delivery]:
        """Wait for at least ``n`` deliveries and return them."""
        await self.until(lambda items: len(items) >= n, timeout)
        return self.items

    async def close(self) -> None:
        """Stop collecting."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def inbox():
    """``inbox(bus, ack=True)``: collect a bus's deliveries for the rest of the test."""
    made: list[Inbox] = []

    def make(bus: Bus, *, ack: bool = True) -> Inbox:
        made.append(Inbox(bus, ack=ack))
        return made[-1]

    yield make
    for box in made:
        await box.close()
