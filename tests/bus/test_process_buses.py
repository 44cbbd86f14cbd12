"""The buses the composition root builds, on a real broker: what each one's settings are for.

`ivr ledger run` and a replay's own ledger both take their bus from ``ivr.bootstrap.ledger_bus``,
the relays theirs from ``relay_bus``, the console its one from ``console_connection``; a change to their
settings shows here.
"""

from __future__ import annotations

import asyncio

import pytest

from ivr.bootstrap import console_connection, ivr_bus, ledger_bus, relay_bus
from ivr.bus.base import ONLINE, status_topic
from ivr.bus.mqtt import MqttBus, forget_session
from ivr.events import EventType, topic_for
from tests.bus.conftest import WAIT


def _ledger(broker, root, name):
    return ledger_bus(broker, client_id=name, root=root)


def _ivr(broker, root, name):
    return ivr_bus(broker, source=name, root=root)


@pytest.mark.parametrize(
    ("build", "event"),
    [
        pytest.param(_ledger, EventType.TICKET_CREATED, id="ledger"),
        pytest.param(_ivr, EventType.LEDGER_INCIDENT_DEDUCTED, id="ivr"),
    ],
)
async def test_an_event_published_while_away_or_not_acked_comes_on_the_next_connection(
    broker, root, client_id, build, event
):
    """What arrives while the process is away, or is taken and not acked, comes again on its next connection.

    That is what the persistent session and the manual acks of both buses are for.
    """
    topic = topic_for(event, root=root)
    name = client_id("process")
    async with MqttBus(config=broker, topic_root=root) as publisher:
        await asyncio.wait_for(publisher.wait_connected(), WAIT)
        bus = build(broker, root, name)
        async with bus:  # the first connection makes the session and its subscription
            await asyncio.wait_for(bus.wait_connected(), WAIT)
        await publisher.publish(topic, b"while-away")
        bus = build(broker, root, name)
        async with bus:
            await asyncio.wait_for(bus.wait_connected(), WAIT)
            taken = await asyncio.wait_for(anext(aiter(bus.deliveries())), WAIT)
            assert (taken.topic, taken.payload) == (topic, b"while-away")  # and not acked
        bus = build(broker, root, name)
        async with bus:
            await asyncio.wait_for(bus.wait_connected(), WAIT)
            again = await asyncio.wait_for(anext(aiter(bus.deliveries())), WAIT)
            assert again.payload == b"while-away"
            again.ack()
        await forget_session(broker, bus.client_id or "")


async def test_a_relay_and_the_console_say_they_are_online_under_their_names(broker, root, client_id):
    """Long-running processes carry a retained status under their instance name, which is also their client id."""
    relay_name, console_name = client_id("relay"), client_id("console")
    relay = relay_bus(broker, instance=relay_name, root=root)
    console = console_connection(broker, instance=console_name, root=root)
    # A broker binding logins to client ids (deploy/mosquitto) knows each by its name.
    assert (relay.client_id, console.bus.client_id) == (relay_name, console_name)
    wanted = {status_topic(relay_name, root=root), status_topic(console_name, root=root)}
    async with MqttBus(config=broker, subscriptions=[f"{root}/status/#"], topic_root=root) as watch:
        await asyncio.wait_for(watch.wait_connected(), WAIT)
        async with relay:
            await asyncio.wait_for(relay.wait_connected(), WAIT)
            await asyncio.wait_for(console.start(), WAIT)
            try:
                seen: dict[str, bytes] = {}
                async with asyncio.timeout(WAIT):
                    async for delivery in watch.deliveries():
                        seen[delivery.topic] = delivery.payload
                        if wanted <= seen.keys():
                            break
            finally:
                await console.close()
        assert {topic: seen[topic] for topic in wanted} == dict.fromkeys(wanted, ONLINE)
        for topic in wanted:  # a shared broker keeps no retained leftovers
            await watch.publish(topic, b"", retain=True)
