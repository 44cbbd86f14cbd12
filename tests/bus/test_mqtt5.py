"""MQTT 5 on a real Mosquitto: events carry the CloudEvents content type, the CONNACK's offers are read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys

import pytest

from ivr.bus.broker import EmbeddedBroker
from ivr.bus.connection import MqttConnection, Session
from ivr.bus.mqtt import CLOUDEVENTS_CONTENT_TYPE, MqttBus
from ivr.bus.url import MQTT5
from tests.conftest import REPO

pytestmark = pytest.mark.broker

WAIT = 20.0


@pytest.fixture
async def private(needs_mosquitto):
    """A Mosquitto of this test's own: a replay's retained status and sessions stay out of the shared one."""
    async with EmbeddedBroker() as broker:
        yield dataclasses.replace(broker.config, mqtt_version=MQTT5)


async def watch(config, topic_filter, seen):
    """An MQTT 5 subscriber that records each message's topic, content type and payload in ``seen``."""

    def on_message(message):
        content_type = getattr(message.properties, "ContentType", None)
        seen.append((message.topic, content_type, bytes(message.payload)))

    connection = MqttConnection(config, Session(), on_published=lambda *_: None)
    connection.on_message = on_message
    await connection.connect(WAIT)
    await connection.subscribe([topic_filter])
    return connection


async def test_every_event_of_a_replay_carries_the_cloudevents_content_type(private):
    """`ivr replay` over MQTT 5: each event (call, auth, ticket, ledger) says application/cloudevents+json."""
    seen: list[tuple[str, str | None, bytes]] = []
    watcher = await watch(private, "ivr/v2/#", seen)
    try:
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr", "replay", "scenarios/rules", "--broker", private.url, "--mqtt-version", "5",
            cwd=REPO, env={**os.environ, "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(120):
            out, _ = await replay.communicate()
        assert replay.returncode == 0, out.decode(errors="replace")
        await asyncio.sleep(0.5)  # the last ledger events, published as the replay ended
    finally:
        watcher.disconnect()
    events = [(topic, content_type, payload) for topic, content_type, payload in seen if "/status/" not in topic]
    types = {json.loads(payload)["type"] for _, _, payload in events}
    assert {"ivr.call.started", "ivr.ticket.created", "ivr.ledger.incident_deducted"} <= types
    assert {content_type for _, content_type, _ in events} == {CLOUDEVENTS_CONTENT_TYPE}


async def test_status_and_dead_letters_are_not_called_cloudevents(private):
    """Statuses (its own, a carried source's, one cleared by another) are text/plain, a dead letter application/json."""
    seen: list[tuple[str, str | None, bytes]] = []
    watcher = await watch(private, "mqtt5/#", seen)
    try:
        async with MqttBus(config=private, instance="mqtt5-test", topic_root="mqtt5") as bus:
            await bus.wait_connected()
            await bus.publish("mqtt5/deadletter", b'{"reason": "test"}')
            await bus.publish("mqtt5/call/started", b"{}")
            await bus.keep_status("mqtt5-test/world-1")
        async with MqttBus(config=private, topic_root="mqtt5") as anyone:
            await anyone.wait_connected()
            await anyone.publish("mqtt5/status/mqtt5-test/world-1", b"", retain=True)
        async with asyncio.timeout(WAIT):
            while len(seen) < 6:
                await asyncio.sleep(0.02)
    finally:
        watcher.disconnect()
    assert [(topic, content_type) for topic, content_type, _ in seen] == [
        ("mqtt5/status/mqtt5-test", "text/plain"),
        ("mqtt5/deadletter", "application/json"),
        ("mqtt5/call/started", CLOUDEVENTS_CONTENT_TYPE),
        ("mqtt5/status/mqtt5-test/world-1", "text/plain"),
        ("mqtt5/status/mqtt5-test", "text/plain"),
        ("mqtt5/status/mqtt5-test/world-1", "text/plain"),
    ]


async def test_the_connack_says_whether_shared_subscriptions_exist(private):
    """Mosquitto over MQTT 5 offers shared subscriptions; a 3.1.1 CONNACK says nothing, read as none."""
    async with MqttBus(config=private) as v5, MqttBus(config=dataclasses.replace(private, mqtt_version="3.1.1")) as v3:
        async with asyncio.timeout(WAIT):
            await asyncio.gather(v5.wait_connected(), v3.wait_connected())
        assert v5.connack is not None
        assert v3.connack is not None
        assert v5.connack.shared_subscriptions
        assert not v3.connack.shared_subscriptions
