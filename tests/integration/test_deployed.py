"""What docker-compose runs, without Docker (its ledger keeps its store in PostgreSQL; here an SQLite file).

The repo's Mosquitto config, `ivr ledger` logged in as ``ledger`` in its own process, and the
console's IVR logged in as ``ivr`` on its one connection (the client id that account is bound to),
relying on that ledger. No service's account may read its own status: each is watched under an
account bound to a client id of its own (``healthcheck``, compose's watcher, or ``integrator``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.bootstrap import build_system, console_connection
from ivr.bus.base import BusRefusedError
from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import BrokerConfig
from ivr.directory.sqlite import SqliteDirectory
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess, LedgerRelayProcess
from ivr.load.process import RelayProcess
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.messages import KeyPress, StartCall
from tests.integration.conftest import WAIT, collector, run_call, ticket_event

pytestmark = pytest.mark.broker
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def as_user(config: BrokerConfig, user: str) -> BrokerConfig:
    """``config`` logged in with one of the dev-only users of deploy/mosquitto/mosquitto.conf."""
    return BrokerConfig(host=config.host, port=config.port, username=user, password=f"{user}-dev-only")


@contextlib.asynccontextmanager
async def console_worlds(config: BrokerConfig, world, tmp_path: Path, count: int):
    """``count`` session worlds as `ivr serve --ledger external` builds them: on the console's one connection."""
    connection = console_connection(as_user(config, "ivr"))
    await connection.start()
    systems = []
    try:
        for n in range(count):
            folder = tmp_path / f"world-{n}"
            folder.mkdir()
            systems.append(
                await build_system(
                    world=world,
                    workdir=folder,
                    source=connection.source(f"world-{n}"),
                    broker=connection.config,
                    own_ledger=False,
                    connection=connection,
                )
            )
        yield systems
    finally:
        for system in systems:
            await system.close()
        await connection.close()


async def test_ivr_and_ledger_under_the_deployed_acl(tmp_path, world, default_world_path):
    """As compose runs them: two session worlds on the console's one login get their calls deducted; no id taken.

    Each world's status, ``ivr/v2/status/ivr-console/world-N``, is written under the ivr login: an
    integrator sees it online while the world runs and cleared when it closes.
    """
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        ledger_db = tmp_path / "ledger.db"
        ledger = LedgerProcess(
            config=as_user(broker.config, "ledger"),
            db=ledger_db,
            fixture=default_world_path,
            client_id="ivr-ledger",  # `ivr ledger run`'s default, the one client id the ledger account may use
            source="ivr-ledger",
            watch_config=as_user(broker.config, "healthcheck"),
            watch_client_id="healthcheck",
        )
        await ledger.start()  # online: its persistent session exists before the first event
        crm = as_user(broker.config, "integrator")
        statuses = MqttBus(config=crm, client_id="integrator", subscriptions=["ivr/v2/status/ivr-console/#"])
        try:
            async with statuses:
                await statuses.wait_connected()
                async with console_worlds(broker.config, world, tmp_path, 2) as systems:
                    for user in ("integrator", "ivr"):  # the console is connected as ivr meanwhile
                        thief = MqttBus(config=as_user(broker.config, user), client_id="ivr-ledger", persistent=True)
                        async with thief:
                            with pytest.raises(BusRefusedError):
                                async with asyncio.timeout(WAIT):
                                    await thief.wait_connected()
                    for system, number in zip(systems, ("+15550100001", "+15550100002"), strict=True):
                        record = await run_call(system, ["2", "1", "2", "1234500001#", "2"], number=number)
                        assert record.call.outcome == "routed"
                    for system in systems:
                        async with asyncio.timeout(WAIT):
                            await system.settle()  # the ledger's answer came back through the ACL, to its world
                    # One ledger for both worlds: each took the balance its own deduction left. Which ticket
                    # reached the ledger first is a race between the two worlds' publishers, not an order.
                    assert sorted([await s.directory.balance("K-ANNA-STD") for s in systems]) == [3, 4]
                said: dict[str, list[bytes]] = {}
                async with asyncio.timeout(WAIT):
                    async for delivery in statuses.deliveries():  # ivr-console/# has ivr-console's own too
                        said.setdefault(delivery.topic, []).append(delivery.payload)
                        if said.get("ivr/v2/status/ivr-console", [])[-1:] == [b"offline"]:  # the console closed last
                            break
                worlds = {f"ivr/v2/status/ivr-console/world-{n}": [b"online", b""] for n in range(2)}
                assert said == {"ivr/v2/status/ivr-console": [b"online", b"offline"], **worlds}
        finally:
            await ledger.stop()
    store = await SqliteLedgerStore.open(ledger_db)
    try:
        assert await store.deducted() == {"K-ANNA-STD": 2}
        assert (await store.verify([("ivr-console/world-0", "2000001"), ("ivr-console/world-1", "2000001")])).ok
    finally:
        await store.close()


async def test_a_relayed_ledger_under_the_deployed_acl(tmp_path, world, default_world_path):
    """`ivr ledger run --no-announce` as ledger, `ivr ledger relay` as ledger-relay: the IVR hears the deduction."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        ledger_db = tmp_path / "ledger.db"
        ledger = LedgerProcess(
            config=as_user(broker.config, "ledger"),
            db=ledger_db,
            fixture=default_world_path,
            client_id="ivr-ledger",
            source="ivr-ledger",
            watch_config=as_user(broker.config, "healthcheck"),
            watch_client_id="healthcheck",
            announce=False,
        )
        relay = LedgerRelayProcess(
            config=as_user(broker.config, "ledger-relay"),
            db=ledger_db,
            instance="ivr-ledger-relay",
            watch_config=as_user(broker.config, "integrator"),
            watch_client_id="integrator",
        )
        await ledger.start()
        await relay.start()
        try:
            async with console_worlds(broker.config, world, tmp_path, 1) as [system]:
                record = await run_call(system, ["2", "1", "2", "1234500001#", "2"], number="+15550100001")
                assert record.call.outcome == "routed"
                async with asyncio.timeout(WAIT):
                    await system.settle()  # the relay's announcement came back through the ACL
                assert await system.directory.balance("K-ANNA-STD") == 4
        finally:
            await relay.stop()
            await ledger.stop()


async def test_ivr_relay_publishes_under_its_own_account(tmp_path, world):
    """`ivr relay` as relay, under its default --instance (the id that account is bound to): an integrator hears it."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    sent = ticket_event("2000009", source="ivr-relayed")
    directory = await SqliteDirectory.open(tmp_path / "ivr.db")
    try:
        await directory.load(world)
        await directory.add_events([sent])
    finally:
        await directory.close()
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        crm = as_user(broker.config, "integrator")
        async with collector(crm, "ivr/v2/#", client_id="integrator") as seen:
            relay = RelayProcess(
                config=as_user(broker.config, "relay"),
                db=tmp_path / "ivr.db",
                instance="ivr-relay",  # `ivr relay`'s default
                watch_config=as_user(broker.config, "healthcheck"),
                watch_client_id="healthcheck",
            )
            await relay.start()
            try:
                async with asyncio.timeout(WAIT):
                    while sent.id not in seen:
                        await asyncio.sleep(0.05)
            finally:
                await relay.stop()
    assert seen[sent.id][0]["data"]["ticket"] == "2000009"


async def test_ivr_serve_as_compose_runs_it(tmp_path, default_world_path):
    """The console app logged in as ivr (its default --instance is the bound id): two pages' calls are deducted."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    at = datetime(2026, 11, 17, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    calls = {"anna-code": ["2", "1", "2", *"1234500001#", "2"], "globex-key": ["2", "2", "3", *"40000002#", "3"]}
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        ledger = LedgerProcess(
            config=as_user(broker.config, "ledger"),
            db=tmp_path / "ledger.db",
            fixture=default_world_path,
            client_id="ivr-ledger",
            source="ivr-ledger",
            watch_config=as_user(broker.config, "healthcheck"),
            watch_client_id="healthcheck",
        )
        await ledger.start()
        try:
            app = create_app(
                fixture=default_world_path, settings=Settings(broker=as_user(broker.config, "ivr")), own_ledger=False
            )
            async with app.router.lifespan_context(app):
                pages: dict[str, list[dict]] = {persona: [] for persona in calls}
                for persona, keys in calls.items():  # each page in a world of its own
                    session = app.state.console.session(pages[persona].append)
                    session.apply(StartCall(persona=persona, at=at))
                    for key in keys:
                        session.apply(KeyPress(key=key))

                def deducted(page: list[dict]) -> list[str]:
                    events = [m["event"] for m in page if m["type"] == "event"]
                    return [e["data"]["contract"] for e in events if e["type"] == "ivr.ledger.incident_deducted"]

                async with asyncio.timeout(WAIT):
                    while not all(deducted(page) for page in pages.values()):
                        await asyncio.sleep(0.05)
                assert {p: deducted(page) for p, page in pages.items()} == {
                    "anna-code": ["K-ANNA-STD"],
                    "globex-key": ["K-GLOBEX-STD"],
                }
        finally:
            await ledger.stop()
