"""The Bus protocol's promises, run against each implementation (transitions' TestAsync pattern).

``BusContract`` holds the tests; ``TestLocalBus`` runs them in memory, ``TestMqttBus`` against
a real Mosquitto (and over MQTT 5), ``TestMqttBusOnRabbitMQ`` on RabbitMQ's MQTT plugin, each by
overriding the ``make_bus`` and ``drop`` fixtures. A test that passes on one and fails on the
other means the fake has drifted from the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc

import pytest

from ivr.bus.base import MAX_MESSAGE, OFFLINE, ONLINE, BusUnavailableError, PartlyPublishedError
from ivr.bus.broker import EmbeddedBroker, free_port
from ivr.bus.local import LocalBroker, LocalBus
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.url import MQTT5

WAIT = 20.0
FAST = Backoff(initial=0.02, maximum=0.2)


async def connected(*buses):
    """Wait (bounded) until every bus is connected."""
    async with asyncio.timeout(WAIT):
        for bus in buses:
            await bus.wait_connected()


class BusContract:
    """Tests every Bus implementation must pass; subclasses provide ``make_bus`` and ``drop``."""

    async def test_publish_reaches_a_subscriber(self, make_bus, root, inbox):
        """A QoS 1 publish that returned has reached a matching subscription."""
        async with make_bus(subscriptions=[f"{root}/call/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            await pub.publish(f"{root}/call/started", b'{"n": 1}')
            [delivery] = await box.count(1)
        assert (delivery.topic, delivery.payload) == (f"{root}/call/started", b'{"n": 1}')

    async def test_a_message_larger_than_one_read_arrives_whole(self, make_bus, root, inbox):
        """The largest message taken (64 KiB) between two small ones: each arrives whole and in order, however cut."""
        big = bytes(range(256)) * (MAX_MESSAGE // 256)
        async with make_bus(subscriptions=[f"{root}/call/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            messages = [(f"{root}/call/a", b"before"), (f"{root}/call/b", big), (f"{root}/call/c", b"after")]
            await pub.publish_many(messages)
            await box.count(3)
        assert box.payloads == [b"before", big, b"after"]

    async def test_a_message_over_the_limit_arrives_by_reference(self, make_bus, root, inbox):
        """Over ``max_message``: its topic and size, no bytes, in its place; the next message arrives whole."""
        async with make_bus(subscriptions=[f"{root}/call/#"], max_message=1000) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            messages = [(f"{root}/call/a", b"x" * 1000), (f"{root}/call/b", b"y" * 5000), (f"{root}/call/c", b"after")]
            await pub.publish_many(messages)
            await box.count(3)
        assert [(d.topic, d.payload, d.oversize) for d in box.items] == [
            (f"{root}/call/a", b"x" * 1000, None),
            (f"{root}/call/b", b"", 5000),
            (f"{root}/call/c", b"after", None),
        ]

    async def test_wildcards_select_topics(self, make_bus, root, inbox):
        """``+`` matches one level and ``#`` the rest; other topics are not delivered."""
        async with make_bus(subscriptions=[f"{root}/+/created", f"{root}/ledger/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            for topic in ("call/started", "ticket/created", "ledger/incident_deducted", "auth/denied"):
                await pub.publish(f"{root}/{topic}", topic)
            await pub.publish(f"{root}/end/created", b"end")
            await box.until(lambda items: items and items[-1].payload == b"end")
        assert box.payloads == [b"ticket/created", b"ledger/incident_deducted", b"end"]

    async def test_order_is_kept(self, make_bus, root, inbox):
        """Messages from one publisher arrive in the order they were published, even 300 at once."""
        async with make_bus(subscriptions=[f"{root}/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            await asyncio.gather(*(pub.publish(f"{root}/call/started", str(i)) for i in range(300)))
            await box.count(300)
        assert box.payloads == [str(i).encode() for i in range(300)]

    async def test_status_is_retained_online_then_offline(self, make_bus, root, inbox):
        """A bus with an instance name says ``online`` (retained) when up and ``offline`` when closed."""
        async with make_bus(subscriptions=[f"{root}/status/#"]) as watcher:
            await connected(watcher)
            box = inbox(watcher)
            async with make_bus(instance="ivr-1", topic_root=root) as bus:
                await connected(bus)
                await box.count(1)
            await box.count(2)
            assert [(d.topic, d.payload) for d in box.items] == [
                (f"{root}/status/ivr-1", ONLINE),
                (f"{root}/status/ivr-1", OFFLINE),
            ]
            await watcher.publish(f"{root}/status/ivr-1", b"", retain=True)  # leave nothing retained

    #: What a late subscriber to the status asks for, under ``<root>/status/``.
    status_filter = "#"

    async def test_late_subscriber_gets_the_retained_status(self, make_bus, root, inbox):
        """Whoever subscribes later still learns the status at once, from the retained message."""
        async with make_bus(instance="ivr-2", topic_root=root) as bus:
            await connected(bus)
            async with make_bus(subscriptions=[f"{root}/status/{self.status_filter}"]) as late:
                await connected(late)
                [delivery] = await inbox(late).count(1)
                await late.publish(f"{root}/status/ivr-2", b"", retain=True)
        assert (delivery.payload, delivery.retain) == (ONLINE, True)

    async def test_last_will_says_offline_when_the_connection_dies(self, make_bus, drop, root, inbox):
        """A connection lost without a clean close makes the broker publish the will: ``offline``."""
        async with make_bus(subscriptions=[f"{root}/status/#"]) as watcher:
            await connected(watcher)
            box = inbox(watcher)
            async with make_bus(instance="ivr-3", topic_root=root) as bus:
                await connected(bus)
                await box.count(1)
                await drop(bus)
                await box.count(2)
                assert box.payloads[:2] == [ONLINE, OFFLINE]
                await box.count(3)  # it reconnects by itself and says so
                assert box.payloads[2] == ONLINE
            await watcher.publish(f"{root}/status/ivr-3", b"", retain=True)

    async def test_unacked_message_comes_again_after_reconnect(self, make_bus, root, client_id, inbox):
        """With manual ack and a persistent session, a message not acked is delivered again next time."""
        session = {
            "client_id": client_id("ledger"),
            "persistent": True,
            "manual_ack": True,
            "subscriptions": [f"{root}/ticket/#"],
        }
        async with make_bus() as pub:
            await connected(pub)
            async with make_bus(**session) as first:
                await connected(first)
                box = inbox(first, ack=False)
                await pub.publish(f"{root}/ticket/created", b"t-1")
                await box.count(1)
            async with make_bus(**session) as second:
                await connected(second)
                again = await inbox(second, ack=True).count(1)
                assert again[0].payload == b"t-1"
            async with make_bus(**session) as third:
                await connected(third)
                box = inbox(third, ack=True)
                await pub.publish(f"{root}/ticket/created", b"t-2")
                await box.count(1)
                assert box.payloads[0] == b"t-2", "an acked message was delivered again"
        async with make_bus(client_id=session["client_id"]) as cleanup:  # a clean session ends the old one
            await connected(cleanup)

    async def test_publish_without_a_connection_fails_at_once(self, make_bus, drop, root):
        """While the broker is unreachable a publish raises instead of hanging."""
        async with make_bus() as bus:
            await connected(bus)
            await drop(bus, stay_down=True)
            with pytest.raises(BusUnavailableError):
                async with asyncio.timeout(WAIT):
                    await bus.publish(f"{root}/call/started", b"x")

    async def test_a_batch_arrives_whole_and_in_order(self, make_bus, root, inbox):
        """``publish_many`` returns once all 900 messages are acknowledged: more than the in-flight window at once."""
        async with make_bus(subscriptions=[f"{root}/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            box = inbox(sub)
            # 900: past the 100 in flight, within the 1,000 a default Mosquitto queues for a subscriber.
            await pub.publish_many([(f"{root}/call/started", str(i)) for i in range(900)])
            await box.count(900)
        assert box.payloads == [str(i).encode() for i in range(900)]

    async def test_batches_hand_over_what_has_arrived_in_order_up_to_the_limit(self, make_bus, root):
        """``batches(limit)`` yields lists of waiting deliveries, in publish order, none longer than ``limit``."""
        async with make_bus(subscriptions=[f"{root}/#"]) as sub, make_bus() as pub:
            await connected(sub, pub)
            await pub.publish_many([(f"{root}/ticket/created", str(i)) for i in range(250)])
            await asyncio.sleep(0.2)  # all arrived before the first batch is taken
            taken: list[list[bytes]] = []
            async with asyncio.timeout(WAIT):
                async for batch in sub.batches(100):
                    taken.append([d.payload for d in batch])
                    if sum(map(len, taken)) == 250:
                        break
        assert [len(b) for b in taken] == [100, 100, 50]
        assert [p for b in taken for p in b] == [str(i).encode() for i in range(250)]

    async def test_a_batch_without_a_connection_says_none_was_acknowledged(self, make_bus, drop, root):
        """A batch on a dropped connection fails at once, with an acknowledged prefix of 0."""
        async with make_bus() as bus:
            await connected(bus)
            await drop(bus, stay_down=True)
            with pytest.raises(PartlyPublishedError) as caught:
                async with asyncio.timeout(WAIT):
                    await bus.publish_many([(f"{root}/call/started", b"x")] * 3)
        assert caught.value.acked == 0
        assert isinstance(caught.value.cause, BusUnavailableError)


class TestLocalBus(BusContract):
    """The contract in memory."""

    @pytest.fixture
    def local_broker(self):
        """One in-memory broker per test."""
        return LocalBroker()

    @pytest.fixture
    def make_bus(self, local_broker):
        """A LocalBus on this test's broker."""
        return lambda **kw: LocalBus(broker=local_broker, **kw)

    @pytest.fixture
    def drop(self, local_broker):
        """Cut a bus off as a network failure would; it comes back unless ``stay_down``."""

        async def cut(bus, *, stay_down=False):
            if stay_down:
                local_broker.stop()
                return
            local_broker.disconnect(bus, clean=False)
            bus.reconnect()

        return cut


@pytest.mark.broker
class TestMqttBus(BusContract):
    """The contract against Mosquitto (127.0.0.1:1883, or a private one)."""

    @pytest.fixture
    def bus_config(self, broker):
        """The broker the buses connect to, as they connect to it."""
        return broker

    @pytest.fixture
    def make_bus(self, bus_config, client_id):
        """An MqttBus with a unique client id unless the test fixes one."""
        names = iter(range(1000))

        def make(**kw):
            kw.setdefault("client_id", client_id(f"bus{next(names)}"))
            return MqttBus(config=bus_config, backoff=FAST, **kw)

        return make

    @pytest.fixture
    def drop(self):
        """Break the TCP connection under a bus (no DISCONNECT): the broker sees it die."""

        async def cut(bus, *, stay_down=False):
            if stay_down:
                # Point future connections at a closed port, then break the current one.
                bus._config = type(bus._config)(host="127.0.0.1", port=free_port())
            bus.break_connection()
            async with asyncio.timeout(WAIT):
                await bus.wait_disconnected()

        return cut


@pytest.mark.broker
class TestMqttBusOverMqtt5(TestMqttBus):
    """The contract over MQTT 5: persistent sessions (which need a session expiry there), manual acks, the will."""

    @pytest.fixture
    def bus_config(self, broker):
        """The same broker, spoken to in MQTT 5."""
        return dataclasses.replace(broker, mqtt_version=MQTT5)


@pytest.mark.broker
class TestMqttBusOnRabbitMQ(TestMqttBus):
    """The contract on RabbitMQ's MQTT plugin (3.1.1 only), a private node of the session's own."""

    @pytest.fixture
    def bus_config(self, rabbitmq):
        """The session's RabbitMQ node."""
        return rabbitmq.config

    #: By the topic's own name: RabbitMQ sends no retained message to a filter with a wildcard
    #: (tests/integration/test_on_rabbitmq.py), which is why the IVR's own watchers name it.
    status_filter = "ivr-2"


@pytest.mark.broker
async def test_a_batch_cut_off_part_way_reports_the_prefix_that_was_acknowledged(broker, client_id, root):
    """The connection dropped under a batch in flight: the error says how many, from the first, the broker took."""
    async with MqttBus(config=broker, client_id=client_id("cut"), backoff=FAST) as bus:
        await connected(bus)
        batch = asyncio.ensure_future(bus.publish_many([(f"{root}/call/started", b"x" * 200)] * 20_000))
        await asyncio.sleep(0.05)  # some PUBACKs in, most not
        bus.break_connection()
        with pytest.raises(PartlyPublishedError) as caught:
            async with asyncio.timeout(WAIT):
                await batch
    assert 0 <= caught.value.acked < 20_000
    assert isinstance(caught.value.cause, BusUnavailableError)


@pytest.mark.broker
async def test_a_broker_killed_under_busy_buses_leaves_no_unretrieved_error(needs_mosquitto, client_id, root):
    """SIGKILL to the broker with publishes in flight, then the buses closed: the loop reports no stray error.

    aiomqtt's exit left a "Future exception was never retrieved" after a node died; nothing of
    the bus's own may end that way.
    """
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        async with EmbeddedBroker() as broker:
            sub = MqttBus(config=broker.config, client_id=client_id("dead-sub"), subscriptions=[f"{root}/#"],
                          persistent=True, manual_ack=True, instance="dead-sub", backoff=FAST)  # fmt: skip
            async with sub, MqttBus(config=broker.config, client_id=client_id("dead-pub"), backoff=FAST) as pub:
                await connected(sub, pub)
                batch = asyncio.ensure_future(pub.publish_many([(f"{root}/call/started", b"x" * 200)] * 5000))
                await asyncio.sleep(0.02)
                await broker.stop(kill=True)
                with pytest.raises(PartlyPublishedError):
                    async with asyncio.timeout(WAIT):
                        await batch
        del batch, sub, pub
        gc.collect()
        await asyncio.sleep(0.1)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reported == []
