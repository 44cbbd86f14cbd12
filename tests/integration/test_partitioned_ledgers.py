"""Two ledgers split the ticket partitions (`ivr ledger run --partitions K/N`) on any broker, each ticket deducted once.

On NATS's and RabbitMQ's MQTT listeners (3.1.1, no shared subscriptions) and on Mosquitto under
the deployed accounts and ACLs: the IVR publishes each ticket on its contract's partition topic, ledger 1/2
and ledger 2/2 (processes of their own, one SQLite file) take their halves, `ivr ledger verify`
finds every deductible ticket applied once, each contract's tickets went to one ledger only, and
an integrator subscribed to ``ivr/v2/#`` received each ticket once, on its partition's topic, and
each ledger event once, from the ledger that applied it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ivr.bootstrap import build_system, console_connection
from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import BrokerConfig
from ivr.events import EventType, partition_of, ticket_topic
from ivr.ledger.partitions import PartitionShare
from ivr.load.launch import Launcher
from ivr.load.ledger import LedgerProcess, verify_ledger
from ivr.load.plan import Planner
from ivr.load.world import Catalog, synthetic_world, write_fixture
from ivr.subprocesses import end_process
from tests.conftest import DEFAULT_WORLD_PATH, TUESDAY_10AM
from tests.faults.conftest import DEDUCTING
from tests.integration.conftest import IVR, ticket_event
from tests.nats import NatsCluster

if TYPE_CHECKING:
    from tests.rabbitmq import RabbitNode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.broker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CALLS = 150
SHARES = [PartitionShare(1, 2), PartitionShare(2, 2)]
WAIT = 60.0


def as_user(config: BrokerConfig, user: str) -> BrokerConfig:
    """``config`` logged in with one of the dev-only accounts of deploy/mosquitto."""
    return BrokerConfig(host=config.host, port=config.port, username=user, password=f"{user}-dev-only")


@contextlib.asynccontextmanager
async def on_nats(home: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Callable[[str], BrokerConfig]]:
    """A nats-server of the test's own; every role connects to its MQTT listener without a login."""
    async with NatsCluster(home, size=1) as nats:
        yield lambda _role: nats.nodes[0].config


@contextlib.asynccontextmanager
async def on_rabbitmq(_home: Path, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[str], BrokerConfig]]:
    """The session's RabbitMQ node (tests/rabbitmq.py); every role connects to its MQTT listener without a login."""
    node: RabbitNode = request.getfixturevalue("rabbitmq")  # started only when this parameter runs
    yield lambda _role: node.config


@contextlib.asynccontextmanager
async def on_deployed_mosquitto(
    home: Path, _request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[str], BrokerConfig]]:
    """Mosquitto with deploy/mosquitto's config: each role logs in with its own account."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=home) as broker:
        yield lambda role: as_user(broker.config, role)


@pytest.mark.parametrize("broker", [on_nats, on_rabbitmq, on_deployed_mosquitto], ids=["nats", "rabbitmq", "mosquitto"])
async def test_two_partitioned_ledgers_deduct_each_ticket_once(broker, tmp_path, request):
    """Ledgers 1/2 and 2/2 on one file: each deductible ticket applied once, by its contract's partition's ledger."""
    world = synthetic_world(seed=16, customers=40, incidents=1_000)
    fixture = tmp_path / "world.yaml"
    write_fixture(world, fixture)
    ledger_db = tmp_path / "ledger.db"
    async with broker(tmp_path / "broker", request) as login:
        ledgers = [
            LedgerProcess(
                config=login(f"ledger-{share.name}"),
                db=ledger_db,
                fixture=fixture,
                client_id=f"ivr-ledger-{share.name}",
                source=f"ivr-ledger-{share.name}",
                partitions=str(share),
                watch_config=login("healthcheck"),  # a ledger's account may not read its own status
                watch_client_id="healthcheck",
                log_file=tmp_path / f"ledger-{share.name}.log",
            )
            for share in SHARES
        ]
        seen: list[tuple[str, dict]] = []
        integrator = MqttBus(config=login("integrator"), client_id="integrator", subscriptions=["ivr/v2/#"])
        async with contextlib.AsyncExitStack() as stack:
            for ledger in ledgers:
                await ledger.start()  # online: its persistent session exists before the first ticket
                stack.push_async_callback(ledger.stop)
            await stack.enter_async_context(integrator)
            await integrator.wait_connected()
            watching = asyncio.create_task(_collect(integrator, seen))
            stack.callback(watching.cancel)
            # The IVR as `ivr serve` runs it: its one connection, under the console's bound client id.
            connection = console_connection(login("ivr"))
            await connection.start()
            stack.push_async_callback(connection.close)
            system = await build_system(
                world=world,
                workdir=tmp_path,
                source=connection.source("world-1"),  # a source the console carries is named under it
                broker=connection.config,
                own_ledger=False,
                connection=connection,
            )
            stack.push_async_callback(system.close)
            planner = Planner(seed=16, mix=DEDUCTING, catalog=Catalog.of(world))
            launcher = Launcher(engine=system.engine, planner=planner, call_prefix="part", start=TUESDAY_10AM)
            await launcher.run(range(CALLS), concurrency=30)
            async with asyncio.timeout(WAIT):
                await system.settle()  # every deductible ticket answered by one of the two ledgers
                tickets = {t for _, t, _ in await system.directory.deductible_tickets()}
                while len({e["id"] for _, e in seen if e["type"].startswith("ivr.ledger.")}) < len(tickets):
                    await asyncio.sleep(0.05)
    verdict = await verify_ledger(ledger_db, directory=tmp_path / "ivr.db")
    assert verdict.ok, verdict.output
    assert verdict.deductions + verdict.rejections == len(tickets) > 20
    with contextlib.closing(sqlite3.connect(ledger_db)) as db:
        applied = db.execute("SELECT contract_id, ledger FROM entries").fetchall()
    by_contract: dict[str, set[str]] = {}
    for contract, ledger_name in applied:
        by_contract.setdefault(contract, set()).add(ledger_name)
    for contract, names in by_contract.items():
        [share] = [s for s in SHARES if partition_of(contract) in s.partitions]
        assert names == {f"ivr-ledger-{share.name}"}, contract
    assert {name for names in by_contract.values() for name in names} == {f"ivr-ledger-{s.name}" for s in SHARES}
    created = [(topic, e) for topic, e in seen if e["type"] == EventType.TICKET_CREATED]
    assert Counter(e["id"] for _, e in created).most_common(1)[0][1] == 1, "the integrator got a ticket twice"
    assert len(created) >= len(tickets)
    assert all(topic == ticket_topic(partition_of(e["data"]["contract"])) for topic, e in created)
    # Each ledger announces only what it applied, so no ledger event came twice either, from the ledger of its contract.
    answers = Counter((e["source"], e["id"]) for _, e in seen if e["type"].startswith("ivr.ledger."))
    assert len(answers) == len(tickets)
    assert answers.most_common(1)[0][1] == 1, "the integrator got a ledger event twice"
    for _, event in seen:
        if event["type"].startswith("ivr.ledger."):
            [share] = [s for s in SHARES if partition_of(event["data"]["contract"]) in s.partitions]
            assert event["source"] == f"ivr-ledger-{share.name}"


async def _collect(
    bus: MqttBus, into: list[tuple[str, dict]], *, statuses: list[tuple[str, bytes]] | None = None
) -> None:
    """Every event the integrator receives, with its topic; status words into ``statuses``; dead letters aside."""
    async for delivery in bus.deliveries():
        if "/status/" in delivery.topic:
            if statuses is not None:
                statuses.append((delivery.topic, delivery.payload))
        elif not delivery.topic.endswith("/deadletter"):
            into.append((delivery.topic, json.loads(delivery.payload)))


async def test_a_partitioned_ledgers_default_name_is_its_status_and_its_events_source(private_broker, tmp_path):
    """`ivr ledger run --partitions 2/2` is `ivr-ledger-2-of-2`: its status topic and its events' source."""
    watcher = MqttBus(config=private_broker.config, subscriptions=["ivr/v2/#"])
    seen: list[tuple[str, dict]] = []
    statuses: list[tuple[str, bytes]] = []
    async with watcher:
        await watcher.wait_connected()
        watching = asyncio.create_task(_collect(watcher, seen, statuses=statuses))
        command = [*IVR, "ledger", "--db", str(tmp_path / "ledger.db"), "run", "--partitions", "2/2"]
        command += ["--broker", private_broker.config.url, "--fixture", str(DEFAULT_WORLD_PATH)]
        env = {**os.environ, "IVR_SCHEMA_BASE": "https://schemas.example/ivr/"}  # and its events name it
        ledger = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL, env=env)
        try:
            async with asyncio.timeout(WAIT):
                while ("ivr/v2/status/ivr-ledger-2-of-2", b"online") not in statuses:
                    await asyncio.sleep(0.05)
                mine = ticket_event("2000001", contract="K-STARK-NEXT", customer="C-STARK")  # partition 3: share 2
                theirs = ticket_event("2000002", contract="K-ANNA-STD")  # partition 4: share 1
                for event in (theirs, mine):
                    await watcher.publish(event.topic, event.to_json())
                while not any(e["type"].startswith("ivr.ledger.") for _, e in seen):
                    await asyncio.sleep(0.05)
        finally:
            await end_process(ledger)
            watching.cancel()
    [answer] = [e for _, e in seen if e["type"].startswith("ivr.ledger.")]
    assert (answer["source"], answer["data"]["ticket"]) == ("ivr-ledger-2-of-2", "2000001")
    assert answer["dataschema"] == "https://schemas.example/ivr/v2/ivr.ledger.incident_deducted.schema.json"
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
        assert db.execute("SELECT ticket_id, ledger FROM entries").fetchall() == [("2000001", "ivr-ledger-2-of-2")]
