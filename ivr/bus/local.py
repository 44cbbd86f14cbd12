"""An in-memory broker and :class:`~ivr.bus.base.Bus`, for unit tests of the logic above the bus.

It keeps the parts of MQTT that the publisher and the ledger rely on, so a test of their logic
means the same thing here as against Mosquitto: topic filters with ``+`` and ``#``, retained
messages, a Last Will, QoS 1 acknowledgement, persistent sessions that queue messages while a
client is away and send unacked ones again when it is back, and an outage that a test switches
on and off (:meth:`LocalBroker.stop`, :meth:`LocalBroker.start`). It does no I/O and no waiting:
what a real broker does after a network round trip happens here at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from ivr.bus.base import (
    MAX_MESSAGE,
    OFFLINE,
    ONLINE,
    BusUnavailableError,
    Delivery,
    publish_one_by_one,
    status_topic,
    topic_matches,
)
from ivr.bus.inbox import Inbox
from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from types import TracebackType

__all__ = ["LocalBroker", "LocalBus"]


@dataclass(slots=True)
class _Session:
    """What the broker remembers about one client id."""

    subscriptions: tuple[str, ...]
    persistent: bool
    bus: LocalBus | None = None
    queued: deque[tuple[str, bytes, bool]] = field(default_factory=deque)
    unacked: dict[int, tuple[str, bytes, bool]] = field(default_factory=dict)


class LocalBroker:
    """The in-memory broker that :class:`LocalBus` instances connect to."""

    def __init__(self) -> None:
        """An empty broker, up."""
        self._up = True
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, bytes] = {}
        self._mids = itertools.count(1)
        self._open: set[LocalBus] = set()
        #: Every message the broker accepted, in order: topic, payload, retain.
        self.log: list[tuple[str, bytes, bool]] = []

    @property
    def up(self) -> bool:
        """Whether the broker accepts connections and publishes."""
        return self._up

    def retained(self, topic: str) -> bytes | None:
        """The retained message on ``topic``, if any."""
        return self._retained.get(topic)

    def stop(self) -> None:
        """An outage: every client is cut off (wills fire first); persistent sessions are kept."""
        for session in list(self._sessions.values()):
            if session.bus is not None:
                self.disconnect(session.bus, clean=False)
        self._up = False

    def start(self) -> None:
        """End the outage; open buses reconnect at once."""
        self._up = True
        for bus in list(self._open):
            bus.reconnect()

    # -- what buses call -------------------------------------------------------------------

    def attach(self, bus: LocalBus) -> None:
        """A bus was opened: it connects now and after every outage."""
        self._open.add(bus)

    def detach(self, bus: LocalBus) -> None:
        """A bus was closed."""
        self._open.discard(bus)
        self.disconnect(bus, clean=True)

    def connect(self, bus: LocalBus) -> None:
        """A CONNECT: resume or start the session, then send what it holds."""
        if not self._up:
            msg = "the local broker is down"
            raise BusUnavailableError(msg)
        taken = self._sessions.get(bus.client_id)
        if taken is not None and taken.bus is not None:
            self.disconnect(taken.bus, clean=False)  # a second connection takes the client id over
        session = self._sessions.get(bus.client_id)
        if session is None or not bus.persistent:
            session = _Session(subscriptions=bus.subscriptions, persistent=bus.persistent)
            self._sessions[bus.client_id] = session
        else:  # the client subscribes again on every connection: the session's list only grows
            session.subscriptions = tuple(dict.fromkeys(session.subscriptions + bus.subscriptions))
        session.bus = bus
        for mid, (topic, payload, retain) in session.unacked.items():
            bus.receive(mid, topic, payload, retain=retain)
        for topic_filter in session.subscriptions:
            for topic, payload in self._retained.items():
                if topic_matches(topic_filter, topic):
                    self._send(session, topic, payload, retain=True)
        while session.queued:
            topic, payload, retain = session.queued.popleft()
            self._send(session, topic, payload, retain=retain)

    def disconnect(self, bus: LocalBus, *, clean: bool) -> None:
        """A DISCONNECT (``clean``) or a dropped connection, which fires the Last Will."""
        session = self._sessions.get(bus.client_id)
        if session is None or session.bus is not bus:
            return
        session.bus = None
        bus.lost()
        if not clean and bus.will is not None:
            self.route(*bus.will, retain=True)
        if not session.persistent:
            del self._sessions[bus.client_id]

    def route(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Accept a PUBLISH and pass it to every matching session."""
        if not self._up:
            msg = "the local broker is down"
            raise BusUnavailableError(msg)
        self.log.append((topic, payload, retain))
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
        for session in list(self._sessions.values()):
            if any(topic_matches(f, topic) for f in session.subscriptions):
                if session.bus is None:
                    session.queued.append((topic, payload, False))
                else:
                    self._send(session, topic, payload, retain=False)

    def ack(self, bus: LocalBus, mid: int) -> None:
        """A PUBACK from a subscriber."""
        session = self._sessions.get(bus.client_id)
        if session is not None and session.bus is bus:
            session.unacked.pop(mid, None)

    def _send(self, session: _Session, topic: str, payload: bytes, *, retain: bool) -> None:
        assert session.bus is not None  # noqa: S101 - only called for a connected session
        mid = next(self._mids)
        if session.bus.manual_ack:
            session.unacked[mid] = (topic, payload, retain)
        session.bus.receive(mid, topic, payload, retain=retain)


class LocalBus:
    """A :class:`~ivr.bus.base.Bus` on a :class:`LocalBroker`, with the options of ``MqttBus``."""

    _ids = itertools.count(1)

    def __init__(  # noqa: PLR0913 - mirrors MqttBus's keywords
        self,
        *,
        broker: LocalBroker,
        client_id: str | None = None,
        instance: str | None = None,
        subscriptions: Sequence[str] = (),
        persistent: bool = False,
        manual_ack: bool = False,
        topic_root: str = TOPIC_ROOT,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        """Describe the connection; it is made when the bus is entered."""
        if persistent and not client_id:
            msg = "a persistent session needs a fixed client_id"
            raise ValueError(msg)
        self.broker = broker
        self.client_id = client_id or f"local-{next(self._ids)}"
        self.subscriptions = tuple(subscriptions)
        self.persistent = persistent
        self.manual_ack = manual_ack
        self.max_message = max_message
        self._status = status_topic(instance, root=topic_root) if instance else None
        self.will = (self._status, OFFLINE) if self._status else None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._open = False
        self._inbox = Inbox(skip_stale=manual_ack)
        self.connections = 0

    async def __aenter__(self) -> Self:
        """Connect if the broker is up; otherwise wait for it, as the MQTT bus does."""
        self._open = True
        self.broker.attach(self)
        self.reconnect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Say ``offline`` and disconnect cleanly."""
        await self.aclose()

    async def aclose(self) -> None:
        """Disconnect cleanly and end :meth:`deliveries`."""
        if self._up.is_set() and self._status:
            self.broker.route(self._status, OFFLINE, retain=True)
        self._open = False
        self.broker.detach(self)
        self._inbox.close()

    def reconnect(self) -> None:
        """Connect now if open and the broker is up, else wait for :meth:`LocalBroker.start`."""
        if not self._open or self._up.is_set() or not self.broker.up:
            return
        self._inbox.new_generation()
        self.connections += 1
        self._up.set()
        self._down.clear()
        self.broker.connect(self)
        if self._status:
            self.broker.route(self._status, ONLINE, retain=True)

    def lost(self) -> None:
        """The connection ended; an open bus connects again when the broker is back."""
        self._up.clear()
        self._down.set()

    def receive(self, mid: int, topic: str, payload: bytes, *, retain: bool) -> None:
        """The broker sends a message to this connection."""
        generation = self._inbox.generation

        def ack() -> None:
            if generation == self._inbox.generation and self._up.is_set():
                self.broker.ack(self, mid)

        on_ack = ack if self.manual_ack else None
        if len(payload) > self.max_message:
            delivery = Delivery(topic=topic, payload=b"", retain=retain, on_ack=on_ack, oversize=len(payload))
        else:
            delivery = Delivery(topic=topic, payload=payload, retain=retain, on_ack=on_ack)
        self._inbox.put(generation, delivery)

    # -- the Bus protocol ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the broker is reachable now."""
        return self._up.is_set()

    async def wait_connected(self) -> None:
        """Return once connected."""
        if not self._open:
            msg = "open the bus (async with) before waiting for it"
            raise RuntimeError(msg)
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        """Return once the connection is gone (at once if there is none)."""
        await self._down.wait()

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Hand the message to the broker; raise :class:`BusUnavailableError` during an outage."""
        await asyncio.sleep(0)  # a publish is a suspension point, as over the network
        if not self._up.is_set():
            msg = "not connected to the local broker"
            raise BusUnavailableError(msg)
        self.broker.route(topic, payload.encode() if isinstance(payload, str) else payload, retain=retain)

    async def publish_many(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        """Publish one after another; an outage part-way says how many got through."""
        await publish_one_by_one(self.publish, messages)

    def deliveries(self) -> AsyncIterator[Delivery]:
        """Messages from the subscriptions until the bus is closed (stale unacked ones skipped)."""
        return self._inbox.deliveries()

    def batches(self, limit: int) -> AsyncIterator[list[Delivery]]:
        """:meth:`deliveries` in batches of whatever has arrived, at most ``limit`` each."""
        return self._inbox.batches(limit)
