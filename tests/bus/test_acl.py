"""The deployment's Mosquitto config (deploy/mosquitto): logins and ACLs, on a real broker.

Debian's mosquitto runs the repository's config with only the listener moved to a free loopback
port and the persistence location to a temporary directory; the password and ACL files are the
repository's own, so these tests check what docker-compose would run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.bus.base import BusRefusedError
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.url import BrokerConfig

pytestmark = pytest.mark.broker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
#: The dev-only passwords documented in deploy/mosquitto/mosquitto.conf.
PASSWORDS = {"ivr": "ivr-dev-only", "ledger": "ledger-dev-only", "integrator": "integrator-dev-only"}
WAIT = 20.0


@pytest.fixture
async def deployed(needs_mosquitto, tmp_path):
    """Mosquitto running deploy/mosquitto/mosquitto.conf on a free loopback port."""
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        yield broker.config


def login(config: BrokerConfig, user: str | None, password: str | None = None) -> BrokerConfig:
    """``config`` with a user and its dev password (or the one given)."""
    if user is None:
        return config
    return BrokerConfig(host=config.host, port=config.port, username=user, password=password or PASSWORDS[user])


def bus(config, user, **kw):
    """An MqttBus logged in as ``user`` that gives up at once when refused."""
    return MqttBus(config=login(config, user), backoff=Backoff(initial=0.02, maximum=0.2), **kw)


async def test_anonymous_connect_is_refused(deployed):
    """allow_anonymous false: a client without a login is refused, with the broker's reason."""
    async with bus(deployed, None) as anonymous:
        with pytest.raises(BusRefusedError) as refused:
            async with asyncio.timeout(WAIT):
                await anonymous.wait_connected()
    assert refused.value.code in {5, 0x87}  # 3.1.1 "not authorised", as paho may report it


async def test_wrong_password_is_refused(deployed):
    """A known user with the wrong password is refused."""
    async with MqttBus(config=login(deployed, "ivr", "not-the-password")) as intruder:
        with pytest.raises(BusRefusedError):
            async with asyncio.timeout(WAIT):
                await intruder.wait_connected()


async def test_integrator_publish_reaches_no_subscriber(deployed, inbox):
    """An integrator may read everything but write nothing: its publish is dropped by the broker."""
    async with (
        bus(deployed, "integrator", subscriptions=["ivr/v1/#"]) as watcher,
        bus(deployed, "integrator") as integrator,
        bus(deployed, "ivr") as ivr,
    ):
        async with asyncio.timeout(WAIT):
            for each in (watcher, integrator, ivr):
                await each.wait_connected()
        box = inbox(watcher)
        await integrator.publish("ivr/v1/ticket/created", b"forged")  # acknowledged, then dropped
        await ivr.publish("ivr/v1/call/started", b"marker")
        [first] = await box.count(1)
    assert first.payload == b"marker", "the integrator's message was delivered"


async def test_ledger_reads_tickets_and_writes_its_verdicts(deployed, inbox):
    """The ledger gets ticket events (not call events) and may publish ledger events others read."""
    async with (
        bus(deployed, "ledger", subscriptions=["ivr/v1/ticket/#"]) as ledger,
        bus(deployed, "integrator", subscriptions=["ivr/v1/ledger/#"]) as crm,
        bus(deployed, "ivr") as ivr,
    ):
        async with asyncio.timeout(WAIT):
            for each in (ledger, crm, ivr):
                await each.wait_connected()
        tickets, verdicts = inbox(ledger), inbox(crm)
        await ivr.publish("ivr/v1/ticket/created", b"t-1")
        [ticket] = await tickets.count(1)
        await ledger.publish("ivr/v1/ledger/incident_deducted", b"v-1")
        [verdict] = await verdicts.count(1)
    assert (ticket.payload, verdict.payload) == (b"t-1", b"v-1")
