"""What docker-compose runs, without Docker (its ledger keeps its store in PostgreSQL; here an SQLite file).

The repo's Mosquitto config, `ivr ledger` logged in as ``ledger`` in its own process, and an IVR
logged in as ``ivr`` that relies on that ledger.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.bootstrap import build_system
from ivr.bus.base import BusRefusedError
from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import BrokerConfig
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess, LedgerRelayProcess
from tests.integration.conftest import WAIT, run_call

pytestmark = pytest.mark.broker
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def as_user(config: BrokerConfig, user: str) -> BrokerConfig:
    """``config`` logged in with one of the dev-only users of deploy/mosquitto/mosquitto.conf."""
    return BrokerConfig(host=config.host, port=config.port, username=user, password=f"{user}-dev-only")


async def test_ivr_and_ledger_under_the_deployed_acl(tmp_path, world, default_world_path):
    """As compose runs them: a call by user ivr is deducted by the ledger process, which an integrator cannot unseat."""
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
            # The ledger's account may not read its status; the integrator's is bound to one client id.
            watch_config=as_user(broker.config, "ivr"),
        )
        await ledger.start()  # online: its persistent session exists before the first event
        try:
            thief = MqttBus(config=as_user(broker.config, "integrator"), client_id="ivr-ledger", persistent=True)
            async with thief:
                with pytest.raises(BusRefusedError):
                    async with asyncio.timeout(WAIT):
                        await thief.wait_connected()
            system = await build_system(
                world=world, workdir=tmp_path, broker=as_user(broker.config, "ivr"), own_ledger=False, source="ivr-1"
            )
            try:
                record = await run_call(system, ["2", "1", "2", "1234500001#", "2"], number="+15550100001")
                assert record.call.outcome == "routed"
                async with asyncio.timeout(WAIT):
                    await system.settle()  # the ledger's answer came back through the ACL
                assert await system.directory.balance("K-ANNA-STD") == 4
            finally:
                await system.close()
        finally:
            await ledger.stop()
    store = await SqliteLedgerStore.open(ledger_db)
    try:
        assert await store.deducted() == {"K-ANNA-STD": 1}
        assert (await store.verify([("ivr-1", "2000001")])).ok
    finally:
        await store.close()


async def test_a_relayed_ledger_under_the_deployed_acl(tmp_path, world, default_world_path):
    """`ivr ledger run --no-announce` as ledger, `ivr ledger relay` as ledger-relay: the IVR hears the deduction."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        watch = as_user(broker.config, "ivr")  # neither service's account may read its own status
        ledger_db = tmp_path / "ledger.db"
        ledger = LedgerProcess(
            config=as_user(broker.config, "ledger"),
            db=ledger_db,
            fixture=default_world_path,
            client_id="ivr-ledger",
            source="ivr-ledger",
            watch_config=watch,
            announce=False,
        )
        relay = LedgerRelayProcess(
            config=as_user(broker.config, "ledger-relay"), db=ledger_db, instance="ivr-ledger-relay", watch_config=watch
        )
        await ledger.start()
        await relay.start()
        try:
            system = await build_system(
                world=world, workdir=tmp_path, broker=as_user(broker.config, "ivr"), own_ledger=False, source="ivr-1"
            )
            try:
                record = await run_call(system, ["2", "1", "2", "1234500001#", "2"], number="+15550100001")
                assert record.call.outcome == "routed"
                async with asyncio.timeout(WAIT):
                    await system.settle()  # the relay's announcement came back through the ACL
                assert await system.directory.balance("K-ANNA-STD") == 4
            finally:
                await system.close()
        finally:
            await relay.stop()
            await ledger.stop()
