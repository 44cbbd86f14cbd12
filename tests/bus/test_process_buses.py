"""The buses the composition root builds: the ledger's and the IVR's keep what arrives while they are away.

`ivr ledger run` and a replay's own ledger both take their bus from ``ivr.bootstrap.ledger_bus``;
these tests pin on a real broker what its settings are for, so a change to them shows here.
"""

from __future__ import annotations

import asyncio

import pytest

from ivr.bootstrap import ivr_bus, ledger_bus
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
