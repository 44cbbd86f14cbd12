"""The console's one connection, on a real broker: each delivery reaches the one world it belongs to."""

from __future__ import annotations

import asyncio
import json

from ivr.bootstrap import console_connection
from ivr.bus.mqtt import MqttBus
from ivr.events import EventType, ticket_topic, topic_for
from tests.bus.conftest import WAIT


def _ticket(source: str, n: int) -> bytes:
    return json.dumps({"id": f"{source}-t{n}", "type": EventType.TICKET_CREATED, "source": source, "data": {}}).encode()


def _answer(to: str, n: int) -> bytes:
    data = {"trigger_source": to, "trigger_event_id": f"{to}-t{n}"}
    return json.dumps({"id": f"a-{to}-{n}", "type": EventType.LEDGER_INCIDENT_DEDUCTED, "data": data}).encode()


async def _take(channel, count: int) -> list[bytes]:
    taken = []
    async with asyncio.timeout(WAIT):
        async for delivery in channel.deliveries():
            taken.append(delivery.payload)
            delivery.ack()
            if len(taken) == count:
                return taken
    return taken


async def test_each_world_gets_its_own_tickets_and_answers_on_one_connection(broker, root, client_id):
    """Two worlds on one connection: tickets go to the writer's ledger, answers to the IVR answered, all to watchers."""
    connection = console_connection(broker, instance=client_id("console"), root=root)
    seen: list[str] = []
    connection.watch(lambda _, event: seen.append(event["id"]))
    await asyncio.wait_for(connection.start(), WAIT)
    try:
        a, b, z = (connection.source(w) for w in ("w-a", "w-b", "w-z"))
        answers = {w: connection.answers_to(w) for w in (a, b)}
        tickets = connection.tickets_from(a, ledger=f"{a}-ledger")
        sent = [
            (topic_for(EventType.LEDGER_INCIDENT_DEDUCTED, root=root), _answer(b, 1)),
            (ticket_topic(0, root=root), _ticket(z, 1)),  # no world's: acked at once
            (ticket_topic(0, root=root), _ticket(a, 1)),
            (topic_for(EventType.LEDGER_INCIDENT_DEDUCTED, root=root), _answer(a, 1)),
            (topic_for(EventType.LEDGER_INCIDENT_DEDUCTED, root=root), _answer(z, 1)),
        ]
        async with MqttBus(config=broker, topic_root=root) as publisher:
            await asyncio.wait_for(publisher.wait_connected(), WAIT)
            await publisher.publish_many(sent)
        assert await _take(answers[a], 1) == [_answer(a, 1)]
        assert await _take(answers[b], 1) == [_answer(b, 1)]
        assert await _take(tickets, 1) == [_ticket(a, 1)]
        async with asyncio.timeout(WAIT):
            while len(seen) < len(sent):
                await asyncio.sleep(0.01)
        assert seen == [json.loads(payload)["id"] for _, payload in sent]
        for channel in (*answers.values(), tickets):
            await channel.aclose()
    finally:
        await connection.close()


async def test_a_channel_not_acked_gets_its_delivery_again_on_the_next_connection(broker, root, client_id):
    """The connection's session is persistent with manual acks: what a world took and did not ack comes again."""
    name = client_id("console")
    payload = _answer(f"{name}/w-a", 1)
    for attempt in range(2):
        connection = console_connection(broker, instance=name, root=root)
        channel = connection.answers_to(connection.source("w-a"))  # before connecting: a redelivery comes at once
        await asyncio.wait_for(connection.start(), WAIT)
        if attempt == 0:
            async with MqttBus(config=broker, topic_root=root) as publisher:
                await asyncio.wait_for(publisher.wait_connected(), WAIT)
                await publisher.publish(topic_for(EventType.LEDGER_INCIDENT_DEDUCTED, root=root), payload)
        async with asyncio.timeout(WAIT):
            delivery = await anext(aiter(channel.deliveries()))
        assert delivery.payload == payload
        if attempt == 0:
            await connection.bus.aclose()  # gone without acking (and without forgetting the session)
        else:
            delivery.ack()
            await channel.aclose()
            await connection.close()


async def test_a_closed_world_leaves_no_unacked_message_holding_the_connection(broker, root, client_id):
    """A world closed with messages it never took: they are acked, so the broker goes on sending to the others.

    The broker sends a client only so many unacked messages (Mosquitto's ``max_inflight_messages``,
    20 by default, 100 deployed); 120 left unacked would stop the console's one connection.
    """
    connection = console_connection(broker, instance=client_id("console"), root=root)
    seen: list[str] = []
    connection.watch(lambda _, event: seen.append(event["id"]))
    await asyncio.wait_for(connection.start(), WAIT)
    try:
        gone_source, live_source = connection.source("w-gone"), connection.source("w-live")
        gone, live = connection.answers_to(gone_source), connection.answers_to(live_source)
        topic = topic_for(EventType.LEDGER_INCIDENT_DEDUCTED, root=root)
        async with MqttBus(config=broker, topic_root=root) as publisher:
            await asyncio.wait_for(publisher.wait_connected(), WAIT)
            await publisher.publish_many([(topic, _answer(gone_source, n)) for n in range(120)])
            await publisher.publish(topic, _answer(live_source, 1))
        async with asyncio.timeout(WAIT):
            while not seen:
                await asyncio.sleep(0.01)
        await gone.aclose()  # never took any of its 120
        assert await _take(live, 1) == [_answer(live_source, 1)]
        await live.aclose()
    finally:
        await connection.close()
