"""One broker connection shared by several systems: the trainer console's session worlds.

A console process keeps one session world per page or class, each an IVR with (usually) a ledger
of its own. Each on its own connections, a busy console held two per world, and none of them could
be bound to its login on a broker that binds one client id per account (deploy/mosquitto): a
holder of the console's password could present any client id at all. So the console holds one
connection, under its own client id, and each world's link takes a :class:`Channel` of it.

The connection subscribes to everything under the topic root, as the console's page forwarding
needs, with a persistent session and manual acks, as each world's ledger and follower need. Each
delivery is read once here and given to the one channel it belongs to: a ticket event to the
ledger of the world whose IVR wrote it (its ``source``), a ledger event to the world it answers
(its ``trigger_source``). That channel acks it once its effect is committed; a delivery no world
wants is acked at once, so nothing of another process's pins the connection's window.

Each world's IVR and ledger is a source of events with a retained status of its own, named under
the console's instance (``ivr-console/world-…``, ``ivr-console/world-…-ledger``): a channel says
``online`` for its source once connected and clears the status when it closes. The console's Last
Will speaks for the connection only, ``offline`` on ``ivr-console``, above every world's. What a
crashed console left under its name arrives retained when it subscribes again, and is cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog

from ivr.bus.base import BusError, topic_matches
from ivr.bus.inbox import Inbox
from ivr.bus.mqtt import forget_session
from ivr.events import TOPIC_ROOT
from ivr.ledger.consumer import LedgerConsumer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from ivr.bus.base import Delivery
    from ivr.bus.mqtt import MqttBus
    from ivr.bus.url import BrokerConfig

__all__ = ["Channel", "SharedConnection", "answers_filter"]

#: A channel's inbox has no connections of its own: every delivery is put under this one.
_GENERATION: Final = 0

log = structlog.get_logger("ivr.multiplex")


def answers_filter(root: str = TOPIC_ROOT) -> str:
    """The topic filter of the ledger's answers, which an IVR follows to take its balances."""
    return f"{root}/ledger/#"


class Channel:
    """One world's side of the shared connection: publishes through it, receives what is routed to it.

    It is a :class:`~ivr.bus.base.Bus`, and opens and closes as a link's bus does; closing it
    leaves the connection to the others. It has no client id of its own: the session is the
    connection's. What a closed channel was given and never acked is acked as it closes: its world
    is gone, and an unacked message would hold one of the connection's in-flight slots (the broker
    sends a client only so many unacked) until the connection itself reconnects.
    """

    def __init__(self, connection: SharedConnection, key: tuple[str, str], instance: str) -> None:
        """A channel of ``connection`` receiving what is routed under ``key``, for the source ``instance``."""
        self._connection = connection
        self._bus = connection.bus
        self._key = key
        self._instance = instance
        self._inbox = Inbox(skip_stale=False)
        self._unacked: dict[int, Delivery] = {}
        self._numbers = itertools.count()

    @property
    def client_id(self) -> None:
        """None: the persistent session belongs to the connection, which forgets it when it closes."""

    @property
    def connected(self) -> bool:
        """Whether the shared connection is up."""
        return self._bus.connected

    def open(self) -> None:
        """Nothing to open: the connection is the console's, open for as long as it runs."""

    async def wait_connected(self) -> None:
        """Return once the shared connection is up and has said this channel's source is ``online``."""
        await self._bus.wait_connected()
        with contextlib.suppress(BusError):  # dropped just now: the next connection says it, as for every kept one
            await self._bus.keep_status(self._instance)

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish on the shared connection."""
        await self._bus.publish(topic, payload, retain=retain)

    async def publish_many(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        """Publish on the shared connection, in order."""
        await self._bus.publish_many(messages)

    def put(self, delivery: Delivery) -> None:
        """A delivery routed here, held as unacked until its taker acks it (or the channel closes)."""
        number = next(self._numbers)
        self._unacked[number] = delivery

        def ack() -> None:
            if self._unacked.pop(number, None) is not None:
                delivery.ack()

        self._inbox.put(_GENERATION, dataclasses.replace(delivery, on_ack=ack))

    def end(self, error: BaseException | None = None) -> None:
        """Nothing more comes: the channel closed, or the connection's reader ended (with ``error``)."""
        self._inbox.close(error)

    def deliveries(self) -> AsyncIterator[Delivery]:
        """What is routed here, until the channel or the connection closes."""
        return self._inbox.deliveries()

    def batches(self, limit: int) -> AsyncIterator[list[Delivery]]:
        """What is routed here, in batches of what has arrived."""
        return self._inbox.batches(limit)

    async def aclose(self) -> None:
        """Stop receiving, ack what was given here and not acked (see the class), and clear the source's status."""
        self._connection.drop(self._key, self)
        self.end()
        unacked, self._unacked = self._unacked, {}
        for delivery in unacked.values():
            delivery.ack()
        with contextlib.suppress(BusError):  # the broker is away: the router clears it once it is back
            await self._bus.drop_status(self._instance)


class SharedConnection:
    """One persistent connection under the process's client id, its deliveries routed to channels."""

    def __init__(
        self,
        *,
        bus: MqttBus,
        config: BrokerConfig,
        instance: str,
        root: str = TOPIC_ROOT,
    ) -> None:
        """Share ``bus`` (``config``'s broker, subscribed to ``root/#``, persistent, manual acks) named ``instance``."""
        self.bus = bus
        self.config = config
        self.instance = instance
        self._tickets = LedgerConsumer.subscriptions(root)
        self._answers = answers_filter(root)
        self._channels: dict[tuple[str, str], Channel] = {}
        self._watchers: list[Callable[[str, dict[str, Any]], None]] = []
        self._reader: asyncio.Task[None] | None = None

    def watch(self, see: Callable[[str, dict[str, Any]], None]) -> None:
        """Have ``see`` called with the topic and the event of every readable event (status messages aside)."""
        self._watchers.append(see)

    async def start(self) -> None:
        """Connect, and start routing once connected (a refusal or an outage is raised here)."""
        self.bus.open()
        await self.bus.wait_connected()
        self._reader = asyncio.create_task(self._route(), name="shared-connection")

    def source(self, name: str) -> str:
        """The name of a source this connection carries (a world's IVR): under the console's instance."""
        return f"{self.instance}/{name}"

    def tickets_from(self, source: str, *, ledger: str) -> Channel:
        """The channel of the ticket events the IVR ``source`` writes: its own ledger's, the source ``ledger``."""
        return self._channel(("tickets", source), ledger)

    def answers_to(self, source: str) -> Channel:
        """The channel of the ledger events answering the IVR ``source``: its follower's, in the IVR's name."""
        return self._channel(("answers", source), source)

    def _channel(self, key: tuple[str, str], instance: str) -> Channel:
        self.bus.carried_status(instance)  # refused now, before a world is half built on it
        if key in self._channels:
            msg = f"a channel for {key[1]!r}'s {key[0]} is open already"
            raise ValueError(msg)
        channel = self._channels[key] = Channel(self, key, instance)
        return channel

    def drop(self, key: tuple[str, str], channel: Channel) -> None:
        """``channel`` is closed: what would be routed to it is acked at once from now on."""
        if self._channels.get(key) is channel:
            del self._channels[key]

    async def close(self) -> None:
        """Stop routing, close the connection and forget its session (a stopped console queues nothing)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.bus.aclose()
        if self.bus.client_id is not None:
            await forget_session(self.config, self.bus.client_id)

    async def _route(self) -> None:
        """Read every delivery once: show it to the watchers, hand it to its channel or ack it."""
        error: BaseException | None = None
        try:
            async for delivery in self.bus.deliveries():
                leftover = self.bus.leftover_status(delivery)
                if leftover is not None:
                    with contextlib.suppress(BusError):  # still there on the next connection, and cleared then
                        await self.bus.drop_status(leftover)
                key, event = self._owner(delivery)
                if event is not None and "/status/" not in delivery.topic:
                    for see in self._watchers:
                        see(delivery.topic, event)
                channel = self._channels.get(key) if key is not None else None
                if channel is None:
                    delivery.ack()
                else:
                    channel.put(delivery)
        except Exception as exc:  # every world would wait forever on its channel: end them with the cause
            log.exception("the shared connection stopped routing", broker=str(self.config))
            error = exc
            raise
        finally:
            for channel in list(self._channels.values()):
                channel.end(error)

    def _owner(self, delivery: Delivery) -> tuple[tuple[str, str] | None, dict[str, Any] | None]:
        """The key of the channel ``delivery`` belongs to (``None``: no world's), and its event if readable."""
        if delivery.oversize is not None:
            return None, None
        try:
            event = orjson.loads(delivery.payload)
        except orjson.JSONDecodeError:
            return None, None
        if not isinstance(event, dict):
            return None, None
        if any(topic_matches(wanted, delivery.topic) for wanted in self._tickets):
            return ("tickets", str(event.get("source"))), event
        data = event.get("data")
        if topic_matches(self._answers, delivery.topic) and isinstance(data, dict):
            return ("answers", str(data.get("trigger_source"))), event
        return None, event
