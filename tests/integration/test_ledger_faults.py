"""The ledger over a real broker: killed, restarted, raced, fed duplicates and garbage — exact balances."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from ivr.bootstrap import build_system
from ivr.bus.mqtt import MqttBus
from ivr.directory.fixtures import load_world
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess, LedgerRelayProcess
from tests.integration.conftest import CODE_CALL, WAIT, collector, run_call, ticket_event

pytestmark = pytest.mark.broker


def ledger_process(config, db, fixture, *, watch_config=None):
    """`ivr ledger` as its own process, with a persistent session (fixed client id)."""
    return LedgerProcess(
        config=config, db=db, fixture=fixture, client_id="test-ledger", source="ivr-ledger", watch_config=watch_config
    )


async def calls_under_kills(system, kills, *, calls, rng, pause):
    """``calls`` support-code calls, 25 at a time, while each of ``kills`` in turn is SIGKILLed and restarted."""

    async def killer():
        for process in kills:
            await asyncio.sleep(rng.uniform(*pause))
            await process.restart(kill=True)

    async def caller():
        for _ in range(0, calls, 25):
            await asyncio.gather(*(run_call(system, CODE_CALL) for _ in range(25)))
            await asyncio.sleep(0.05)

    await asyncio.gather(killer(), caller())


async def test_ledger_killed_with_sigkill_mid_stream_ends_with_exact_balances(private_broker, big_world_file, tmp_path):
    """SIGKILL the `ivr ledger` process 3 times while 300 calls deduct: every ticket applied once."""
    config = private_broker.config
    db = tmp_path / "ledger.db"
    world = load_world(big_world_file)
    ledger = ledger_process(config, db, big_world_file)
    await ledger.start()  # online: its persistent session exists before events flow
    system = await build_system(world=world, workdir=tmp_path, broker=config, own_ledger=False, source="ivr-kill")
    calls, kills = 300, 3
    rng = random.Random(7)
    try:
        await calls_under_kills(system, [ledger] * kills, calls=calls, rng=rng, pause=(0.2, 0.8))
        async with asyncio.timeout(WAIT):
            await system.settle()
    finally:
        await system.close()
        await ledger.stop()
    store = await SqliteLedgerStore.open(db)
    try:
        tickets = [("ivr-kill", t) for t in [f"{2_000_001 + i}" for i in range(calls)]]
        report = await store.verify(tickets)
        assert report.ok, report.problems
        assert (await store.deducted()) == {"K-BIG": calls}
        assert (await store.balances())["K-BIG"] == (100_000, 100_000 - calls)
        assert await store.unsent() == []
    finally:
        await store.close()


async def test_a_relayed_ledger_and_its_relay_killed_mid_stream_deduct_once_and_announce_every_entry(
    private_broker, big_world_file, tmp_path
):
    """The ledger (not announcing) and its relay SIGKILLed in turn during 300 calls: applied once, all announced."""
    config = private_broker.config
    db = tmp_path / "ledger.db"
    ledger = LedgerProcess(
        config=config, db=db, fixture=big_world_file, client_id="test-ledger", source="ivr-ledger", announce=False
    )
    relay = LedgerRelayProcess(config=config, db=db, instance="ivr-ledger-relay")
    await ledger.start()
    await relay.start()
    world = load_world(big_world_file)
    system = await build_system(world=world, workdir=tmp_path, broker=config, own_ledger=False, source="ivr-relayed")
    calls = 300
    rng = random.Random(11)
    try:
        async with collector(config, "ivr/v2/ledger/#", client_id="ledger-watch") as seen:
            await calls_under_kills(system, [ledger, relay, ledger, relay], calls=calls, rng=rng, pause=(0.2, 0.6))
            async with asyncio.timeout(WAIT):
                await system.settle()  # the IVR has heard the ledger's answer to every ticket
        announced = set(seen)
    finally:
        await system.close()
        await relay.stop()
        await ledger.stop()
    store = await SqliteLedgerStore.open(db)
    try:
        tickets = [("ivr-relayed", f"{2_000_001 + i}") for i in range(calls)]
        report = await store.verify(tickets)
        assert report.ok, report.problems
        assert (await store.deducted()) == {"K-BIG": calls}
        assert await relay.relayed_up_to() == await store.entries_end()
        # The relay never marks the ledger's file: every entry is there with its event, and was heard.
        in_file = {json.loads(payload)["id"] for _, _, payload in await store.unsent(10_000)}
        assert len(in_file) == calls
        assert in_file <= announced
    finally:
        await store.close()


async def test_broker_restarted_mid_run_loses_no_event(private_broker, big_world_file, tmp_path):
    """Restart Mosquitto twice during 200 calls: every outbox row reaches a subscriber and the ledger."""
    config = private_broker.config
    world = load_world(big_world_file)
    async with collector(config, "ivr/v2/#", client_id="restart-watch") as seen:
        system = await build_system(world=world, workdir=tmp_path, broker=config, source="ivr-restart")
        try:

            async def restarter():
                for _ in range(2):
                    await asyncio.sleep(0.3)
                    await private_broker.restart()

            async def caller():
                for _ in range(8):
                    await asyncio.gather(*(run_call(system, CODE_CALL) for _ in range(25)))
                    await asyncio.sleep(0.05)

            await asyncio.gather(restarter(), caller())
            async with asyncio.timeout(WAIT):
                await system.settle()
            assert await system.directory.unsent(10) == []
            emitted = await system.directory._scans.execute_fetchall("SELECT event_id FROM outbox")
            emitted_ids = {row[0] for row in emitted}
            try:
                async with asyncio.timeout(WAIT):
                    while not emitted_ids <= seen.keys():
                        await asyncio.sleep(0.05)
            except TimeoutError:
                missing = emitted_ids - seen.keys()
                pytest.fail(f"{len(missing)} of {len(emitted_ids)} events never reached the subscriber")
            assert len(emitted_ids) >= 200 * 5
            report = await system.ledger.verify([(s, t) for s, _, t in await system.directory.deductible_tickets()])
            assert report.ok, report.problems
            assert (await system.ledger.deducted()) == {"K-BIG": 200}
        finally:
            await system.close()


async def test_two_calls_racing_for_the_last_incident_give_one_deduction_and_one_rejection(
    private_broker, world, tmp_path
):
    """Two concurrent calls on K-FAY-ONE (1 incident left): one deducted, one rejected and announced."""
    config = private_broker.config
    async with collector(config, "ivr/v2/ledger/#", client_id="race-watch") as seen:
        system = await build_system(world=world, workdir=tmp_path, broker=config, source="ivr-race")
        try:
            script = ["2", "1", "2", "1234500006#", "2"]
            first, second = await asyncio.gather(
                run_call(system, script, number="+15550100006"), run_call(system, script, number="+15550100006")
            )
            assert first.call.outcome == second.call.outcome == "routed"  # both saw an incident left
            async with asyncio.timeout(WAIT):
                await system.settle()
            entries = await system.ledger.entries()
            assert sorted(e.outcome for e in entries) == ["deducted", "rejected"]
            assert {e.reason for e in entries} == {None, "no_incidents_left"}
            assert (await system.ledger.balances())["K-FAY-ONE"] == (1, 0)
            assert await system.directory.balance("K-FAY-ONE") == 0
            async with asyncio.timeout(WAIT):
                while len(seen) < 2:
                    await asyncio.sleep(0.05)
            types = sorted(v[0]["type"] for v in seen.values())
            assert types == ["ivr.ledger.deduction_rejected", "ivr.ledger.incident_deducted"]
        finally:
            await system.close()


async def test_redelivered_and_malformed_messages_over_the_bus(private_broker, world, tmp_path):
    """A duplicate deducts once; garbage goes to ivr/v2/deadletter with its reason; the ledger keeps going."""
    config = private_broker.config
    system = await build_system(world=world, workdir=tmp_path, broker=config, source="ivr-dup")
    try:
        async with (
            collector(config, "ivr/v2/deadletter", client_id="dead-watch") as dead,
            MqttBus(config=config) as raw,
        ):
            await raw.wait_connected()
            good = ticket_event("2999001", event_id="11111111-1111-4111-8111-111111111111").to_json()
            await raw.publish("ivr/v2/ticket/created/0", good)
            await raw.publish("ivr/v2/ticket/created/0", good)  # redelivered: same source + id
            await raw.publish("ivr/v2/ticket/created/0", b"{not json")
            bad = json.loads(ticket_event("2999002", event_id="22222222-2222-4222-8222-222222222222").to_json())
            del bad["data"]["contract"]
            await raw.publish("ivr/v2/ticket/created/0", json.dumps(bad))
            later = ticket_event("2999003", event_id="33333333-3333-4333-8333-333333333333").to_json()
            await raw.publish("ivr/v2/ticket/created/0", later)
            async with asyncio.timeout(WAIT):
                while len(await system.ledger.entries()) < 2 or len(dead) < 2:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # room for a wrong extra deduction to show up
            assert (await system.ledger.deducted()) == {"K-ANNA-STD": 2}
            reasons = sorted(v[0]["reason"] for v in dead.values())
            assert any("not JSON" in r for r in reasons), reasons
            assert any("contract" in r for r in reasons), reasons
    finally:
        await system.close()


async def test_two_ledgers_on_a_shared_subscription_deduct_each_ticket_once_from_one_file(
    private_broker, big_world_file, tmp_path
):
    """`--share`: the broker splits 400 tickets between two ledgers on one file; each deducted once, both took some."""
    config = private_broker.config
    db = tmp_path / "ledger.db"
    opening = {c.id: c.incidents for c in load_world(big_world_file).contracts.values()}
    stores = [await SqliteLedgerStore.open(db) for _ in range(2)]
    tickets = 400
    try:
        for store in stores:
            await store.load_opening(opening)
        buses = [
            MqttBus(
                config=config,
                client_id=f"shared-ledger-{k}",
                subscriptions=LedgerConsumer.subscriptions(share="ledgers"),
                persistent=True,
                manual_ack=True,
            )
            for k in range(2)
        ]
        async with buses[0], buses[1], MqttBus(config=config, client_id="shared-feeder") as feeder:
            await asyncio.gather(*(bus.wait_connected() for bus in (*buses, feeder)))
            consumers = [
                LedgerConsumer(bus=bus, service=LedgerService(store=store, source=f"ledger-{k}"), announce=False)
                for k, (bus, store) in enumerate(zip(buses, stores, strict=True))
            ]
            tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
            events = [
                ticket_event(f"{2_000_001 + i}", contract="K-BIG", customer="C-BIG", source="ivr-shared").to_json()
                for i in range(tickets)
            ]
            await feeder.publish_many([("ivr/v2/ticket/created/0", event) for event in events])
            async with asyncio.timeout(WAIT):
                while sum(consumer.applied for consumer in consumers) < tickets:
                    await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        report = await stores[0].verify([("ivr-shared", f"{2_000_001 + i}") for i in range(tickets)])
        assert report.ok, report.problems
        assert (await stores[0].deducted()) == {"K-BIG": tickets}
        applied = [consumer.applied for consumer in consumers]
        assert sum(applied) == tickets, applied  # each message went to one ledger
        assert all(applied), applied
    finally:
        for store in stores:
            await store.close()
