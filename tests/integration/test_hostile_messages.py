"""A running `ivr ledger` fed what an attacker or a broken client sends: messages far too large, forged repeats.

Each test runs the ledger as its own process (`ivr ledger run`, a persistent session with manual
acks) on a private Mosquitto, and checks what integrators see: its dead letters and its verdicts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest

from ivr.bus.base import MAX_MESSAGE
from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import MQTT5, MQTT311
from ivr.load.ledger import LedgerProcess
from ivr.load.procs import vm_hwm_mb
from tests.conftest import DEFAULT_WORLD_PATH, REPO
from tests.integration.conftest import WAIT, collector, ticket_event

pytestmark = pytest.mark.broker

TICKETS = "ivr/v2/ticket/created/0"
MB = 1_000_000


@pytest.fixture
def needs_mosquitto():
    """These tests start their own Mosquitto."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")


async def until(condition, what):
    """Wait (at most WAIT s) for ``condition()``; fail saying ``what`` never happened."""
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{what} within {WAIT:g} s")


def ledger_on(broker, tmp_path, *, mqtt_version=MQTT311):
    """`ivr ledger run` on ``broker`` speaking ``mqtt_version``, its file and log in ``tmp_path``."""
    return LedgerProcess(
        config=dataclasses.replace(broker.config, mqtt_version=mqtt_version),
        db=tmp_path / "ledger.db",
        fixture=DEFAULT_WORLD_PATH,
        client_id="hostile-ledger",
        source="ivr-ledger",
        log_file=tmp_path / "ledger.log",
    )


async def _garbage_then_a_ticket(broker, ledger, sizes, ticket):
    """Messages of ``sizes`` bytes, then a valid ticket event: the dead letters and the RSS growth."""
    await ledger.start()
    try:
        before = vm_hwm_mb(ledger.pid)
        async with (
            collector(broker.config, "ivr/v2/deadletter", client_id="dead-watch") as dead,
            collector(broker.config, "ivr/v2/ledger/#", client_id="verdict-watch") as verdicts,
            MqttBus(config=broker.config, publish_timeout=WAIT) as garbage,
        ):
            await garbage.wait_connected()
            for size in sizes:
                await garbage.publish(TICKETS, b"x" * size)
            await garbage.publish(TICKETS, ticket_event(ticket).to_json())
            await until(lambda: verdicts, "no verdict for the ticket sent after the garbage")
            await asyncio.sleep(0.5)  # a dead letter published before the verdict has had time to arrive
        peak = vm_hwm_mb(ledger.pid)
    finally:
        await ledger.stop()
    [[verdict]] = verdicts.values()
    assert (verdict["type"], verdict["data"]["ticket"]) == ("ivr.ledger.incident_deducted", ticket)
    assert before is not None
    assert peak is not None
    return [letter for [letter] in dead.values()], peak - before


async def test_messages_over_the_limit_are_dead_lettered_by_reference_and_the_ledger_keeps_applying(
    needs_mosquitto, tmp_path
):
    """MQTT 3.1.1, 50 and 100 MB via a broker with no limit: two dead letters (topic, size), the next ticket deducted.

    3.1.1 has no way to tell the broker our limit and paho reads a message whole, so each passes
    through memory at its own size: the peak grows by a small multiple of the largest, not more.
    """
    async with EmbeddedBroker(persistence_dir=tmp_path / "broker", message_size_limit=None) as broker:
        ledger = ledger_on(broker, tmp_path)
        letters, growth = await _garbage_then_a_ticket(broker, ledger, (50 * MB, 100 * MB), "2999001")
    letters.sort(key=lambda letter: letter["size"])
    assert [(letter["topic"], letter["size"]) for letter in letters] == [(TICKETS, 50 * MB), (TICKETS, 100 * MB)]
    assert all("over the message size limit" in letter["reason"] for letter in letters)
    assert not any("payload" in letter or "payload_base64" in letter for letter in letters)
    assert growth < 350, f"the ledger's peak RSS grew by {growth} MB for a largest message of 100 MB"


async def test_over_mqtt5_the_broker_withholds_what_is_far_over_the_limit(needs_mosquitto, tmp_path):
    """MQTT 5, 50 and 100 MB via a broker with no limit: the ledger's Maximum Packet Size keeps them away, RSS flat."""
    async with EmbeddedBroker(persistence_dir=tmp_path / "broker", message_size_limit=None) as broker:
        ledger = ledger_on(broker, tmp_path, mqtt_version=MQTT5)
        letters, growth = await _garbage_then_a_ticket(broker, ledger, (50 * MB, 100 * MB), "2999007")
    assert letters == []  # never sent to the ledger, so nothing to dead-letter
    assert growth < 30, f"the ledger's peak RSS grew by {growth} MB while 150 MB went by"


async def test_a_broker_with_the_limit_forwards_no_message_over_it(needs_mosquitto, tmp_path):
    """The generated config's limit: 1 MB is acknowledged and reaches no one, the ticket after it is deducted."""
    async with EmbeddedBroker(persistence_dir=tmp_path / "broker") as broker:
        ledger = ledger_on(broker, tmp_path)
        await ledger.start()
        try:
            async with (
                collector(broker.config, "ivr/v2/ledger/#", client_id="verdict-watch") as verdicts,
                MqttBus(config=broker.config, subscriptions=[TICKETS]) as watch,
                MqttBus(config=broker.config) as garbage,
            ):
                await asyncio.gather(watch.wait_connected(), garbage.wait_connected())
                await garbage.publish(TICKETS, b"x" * (MAX_MESSAGE + 1))  # acknowledged: QoS 1 completes
                await garbage.publish(TICKETS, ticket_event("2999002").to_json())
                await until(lambda: verdicts, "no verdict for the ticket sent after the garbage")
                # One connection, in order: had the broker forwarded the large one, it would come first.
                first = await anext(watch.deliveries())
        finally:
            await ledger.stop()
    assert json.loads(first.payload)["data"]["ticket"] == "2999002"


def test_the_deployed_broker_takes_what_a_subscriber_takes():
    """deploy/mosquitto's ``message_size_limit`` is the bus's own limit."""
    text = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert re.findall(r"^message_size_limit (\d+)$", text, re.MULTILINE) == [str(MAX_MESSAGE)]


async def test_forged_and_absurd_ticket_events_are_dead_lettered_with_their_reason(needs_mosquitto, tmp_path):
    """An applied id with other content, a 5,000-digit ticket, a 60 KB contract: dead letters, nothing deducted."""
    original = ticket_event("2999003", event_id="evt-forge-1", source="ivr-forge")
    forged = json.loads(original.to_json())
    forged["data"]["ticket"] = "2999004"  # the same event id, another ticket: billed twice if taken
    absurd_ticket = json.loads(ticket_event("2" * 5000, source="ivr-forge").to_json())
    absurd_ticket["subject"] = "call-absurd"
    absurd_contract = json.loads(ticket_event("2999005", contract="K" * 60_000, source="ivr-forge").to_json())
    async with EmbeddedBroker(persistence_dir=tmp_path / "broker") as broker:
        ledger = ledger_on(broker, tmp_path)
        await ledger.start()
        try:
            async with (
                collector(broker.config, "ivr/v2/deadletter", client_id="dead-watch") as dead,
                collector(broker.config, "ivr/v2/ledger/#", client_id="verdict-watch") as verdicts,
                MqttBus(config=broker.config) as forger,
            ):
                await forger.wait_connected()
                await forger.publish(TICKETS, original.to_json())
                await until(lambda: verdicts, "no verdict for the original")
                for event in (forged, absurd_ticket, absurd_contract):
                    await forger.publish(TICKETS, json.dumps(event))
                await forger.publish(TICKETS, original.to_json())  # a plain redelivery: silently absorbed
                await forger.publish(TICKETS, ticket_event("2999006", source="ivr-forge").to_json())
                await until(lambda: len(verdicts) == 2 and len(dead) == 3, "no verdict after the forgeries")
        finally:
            await ledger.stop()
    # The three may reach the ledger in one batch, whose schema failures are dead-lettered before
    # its conflicts: one letter of each kind, in whatever order.
    letters = [letter for [letter] in dead.values()]
    [conflict] = [letter for letter in letters if letter["reason"].startswith("conflict: ")]
    assert conflict["reason"].startswith("conflict: event 'evt-forge-1' from 'ivr-forge' was applied")
    assert json.loads(conflict["payload"]) == forged
    reasons = [letter["reason"] for letter in letters]
    assert sum("data.ticket" in reason for reason in reasons) == 1
    assert sum("data.contract" in reason for reason in reasons) == 1
    assert all(len(reason) < 400 for reason in reasons)
    assert sorted(event["data"]["ticket"] for [event] in verdicts.values()) == ["2999003", "2999006"]
