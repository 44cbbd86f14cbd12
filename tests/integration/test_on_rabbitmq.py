"""The IVR on RabbitMQ's MQTT plugin (3.1.1 only), a private node of the session's own (tests/rabbitmq.py).

Every shipped scenario replays over it; the bus contract runs on it
(tests/bus/test_bus_contract.py::TestMqttBusOnRabbitMQ), and two partitioned ledgers split the
tickets on it (tests/integration/test_partitioned_ledgers.py). Here too, what docs/deploy.md
says RabbitMQ keeps of a status and what it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from ivr.bus.base import OFFLINE, ONLINE, status_topic
from ivr.bus.connection import MqttConnection, Session
from ivr.bus.mqtt import MqttBus
from tests import rabbitmq as rabbitmq_fixture
from tests.conftest import REPO
from tests.integration.conftest import WAIT, ivr, replay_every_scenario

pytestmark = pytest.mark.broker

#: How long a subscriber waits for retained messages that should come with its SUBACK.
RETAINED_WAIT = 1.0


async def test_every_shipped_scenario_passes_over_rabbitmq(rabbitmq):
    """`ivr replay scenarios --broker` the RabbitMQ node: every scenario passes, exit 0."""
    await replay_every_scenario(rabbitmq.config.url)


def test_without_rabbitmq_and_no_way_to_install_it_the_fixture_fails_saying_how(monkeypatch, tmp_path):
    """No scripts and no apt: the fixture fails (never skips), naming the package to install."""
    monkeypatch.setattr(rabbitmq_fixture, "SCRIPTS", tmp_path / "missing")
    monkeypatch.setattr(rabbitmq_fixture.shutil, "which", lambda _: None)
    with pytest.raises(pytest.fail.Exception, match="install Debian's rabbitmq-server package"):
        rabbitmq_fixture.RabbitNode(tmp_path)


async def test_mqtt5_on_rabbitmq_is_refused_at_once_naming_the_version_it_speaks(rabbitmq):
    """`--mqtt-version 5` on RabbitMQ 3.10, which closes an MQTT 5 CONNECT unanswered: exit 1, saying so.

    Before, the error said no broker answered there and to start one.
    """
    url = rabbitmq.config.url
    status, out = await ivr("replay", str(REPO / "scenarios"), "--broker", url, "--mqtt-version", "5")
    assert status == 1, out
    assert "closed an MQTT 5 connection unanswered: it speaks MQTT 3.1.1 only; leave out --mqtt-version 5" in out
    assert "start a broker there" not in out
    assert "Traceback" not in out


async def retained(config, topic_filter: str) -> list[tuple[str, bytes]]:
    """What a new clean-session subscriber to ``topic_filter`` receives retained on arrival."""
    got: list[tuple[str, bytes]] = []
    async with MqttBus(config=config, subscriptions=[topic_filter]) as late:
        await late.wait_connected()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETAINED_WAIT):
                async for delivery in late.deliveries():
                    got.append((delivery.topic, delivery.payload))  # noqa: PERF401 - the timeout ends the loop, keeping these
    return got


async def test_a_retained_status_reaches_a_subscriber_of_its_topic_and_none_of_a_wildcard(rabbitmq):
    """RabbitMQ 3.10 keeps ``online`` for ``ivr/v2/status/<name>`` but sends it to no ``+`` or ``#`` filter.

    Which is why the IVR's watchers (``ivr load``'s, the fault tests') subscribe to a status by
    its name, and why docs/deploy.md tells integrators on RabbitMQ to do the same.
    """
    root = f"ivr-test/{uuid.uuid4().hex[:12]}"
    topic = status_topic("ledger-a", root=root)
    async with MqttBus(config=rabbitmq.config, instance="ledger-a", topic_root=root) as process:
        await process.wait_connected()
        by_name = await retained(rabbitmq.config, topic)
        by_wildcards = [
            await retained(rabbitmq.config, f"{root}/status/+"),
            await retained(rabbitmq.config, f"{root}/#"),
        ]
    assert by_name == [(topic, ONLINE)]
    assert by_wildcards == [[], []]


async def test_a_dead_connections_last_will_is_retained(rabbitmq):
    """A process that dies without a goodbye is ``offline`` for whoever asks later, by the will alone."""
    topic = status_topic("ledger-b", root=f"ivr-test/{uuid.uuid4().hex[:12]}")
    connection = MqttConnection(
        rabbitmq.config,
        Session(client_id=f"ivr-test-{uuid.uuid4().hex[:12]}", will=(topic, OFFLINE)),
        on_published=lambda *_: None,
    )
    try:
        assert (await connection.connect(WAIT)).code == 0
        connection.paho.publish(topic, ONLINE, qos=1, retain=True)
        async with asyncio.timeout(WAIT):
            while await retained(rabbitmq.config, topic) != [(topic, ONLINE)]:
                pass
    finally:
        connection.abort()  # no DISCONNECT: the broker publishes the will, and (as asked) retains it
    async with asyncio.timeout(WAIT):
        while (after := await retained(rabbitmq.config, topic)) == [(topic, ONLINE)]:
            pass
    assert after == [(topic, OFFLINE)]
