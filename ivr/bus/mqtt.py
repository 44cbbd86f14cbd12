"""The :class:`~ivr.bus.base.Bus` over MQTT (3.1.1 or 5), on paho-mqtt's public API.

One :class:`~ivr.bus.connection.MqttConnection` is one connection; this adapter adds what an
always-on process needs:

- **Reconnection** with backoff, for as long as the bus is open. Each connection is a fresh
  client, so nothing half-sent survives one; the outbox (not the MQTT client) is what remembers
  unsent events.
- **A window of publishes in flight**: one publish at a time waits a round trip per message. A
  publish returns only when its PUBACK arrives, and fails at once, not after a timeout, when the
  connection drops; a connection that stays open but acknowledges nothing within the publish
  timeout is given up, so the next try goes out on a new one.
- **Manual acknowledgement.** With paho's ``manual_ack`` a QoS 1 message is acknowledged only by
  :meth:`Delivery.ack`, after the consumer's commit; with a persistent session (a fixed client
  id, not clean) the broker sends an unacked message again after a reconnect.
- **Status.** ``<root>/status/<instance>`` is retained ``online`` once connected; the Last Will
  makes it ``offline`` when the connection dies, and a clean close says ``offline`` itself (or,
  for an instance named for one run only, clears it). A connection that carries other sources
  (the console's worlds) keeps their statuses too, named under its own, which its Will covers.
- **Messages straight into an inbox** (:mod:`ivr.bus.inbox`) from paho's callback, taken one at
  a time or in batches, with no task per message.
- **A size limit** (:data:`~ivr.bus.base.MAX_MESSAGE`): a larger message is delivered by
  reference, its topic and size. Over MQTT 5 the broker is also told a Maximum Packet Size, so
  it withholds what is far larger instead of sending it; over 3.1.1 there is no such thing, and
  the brokers we configure refuse large messages themselves (``message_size_limit``).
- **MQTT 5 where asked for** (``mqtt5://``, ``--mqtt-version 5``): events carry the CloudEvents
  content type, persistent sessions expire, the CONNACK says whether shared subscriptions exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Self

import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ivr.bus.base import (
    CLEARED,
    MAX_MESSAGE,
    OFFLINE,
    ONLINE,
    BusError,
    BusRefusedError,
    BusUnavailableError,
    Delivery,
    MqttVersionRefusedError,
    PartlyPublishedError,
    PublishTimeoutError,
    TaskEndedError,
    deadletter_topic,
    status_root,
    status_topic,
    wait_unless_ended,
)
from ivr.bus.connection import ClosedBeforeConnackError, Connack, MqttConnection, Session, connect_once
from ivr.bus.inbox import Inbox
from ivr.bus.url import MQTT5
from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from types import TracebackType

    from paho.mqtt.client import MQTTMessage

    from ivr.bus.url import BrokerConfig

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "DEFAULT_INFLIGHT",
    "SESSION_EXPIRY",
    "Backoff",
    "MqttBus",
    "forget_session",
    "probe",
]

#: Publishes awaiting their PUBACK at once: where Mosquitto's throughput levels off.
DEFAULT_INFLIGHT: Final = 100
#: The CloudEvents MQTT binding's content type for an event in structured mode (MQTT 5 only).
CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
#: How long an MQTT 5 broker keeps a persistent session whose client has gone: a ledger down for a
#: day still finds its tickets waiting, and an abandoned session does not pin messages for ever.
SESSION_EXPIRY: Final = 7 * 24 * 3600
#: The Maximum Packet Size an MQTT 5 client announces: the message limit with room for its topic
#: and properties, and well above it, so that a message over the limit by less still arrives, to
#: be dead-lettered by reference, while what is far larger is never sent to us at all.
_MAX_PACKET: Final = 16 * MAX_MESSAGE
_SUBACK_FAILURE: Final = 0x80
#: CONNACK codes that retrying cannot fix (3.1.1 values, then their MQTT 5 equivalents).
_REFUSED: Final = frozenset({1, 2, 4, 5, 0x84, 0x85, 0x86, 0x87, 0x8C})
_CLOSE_TIMEOUT: Final = 2.0

log = structlog.get_logger("ivr.bus.mqtt")


class _Batch:
    """Publishes awaited together: which the broker has acknowledged, and whether any it refused."""

    __slots__ = ("acked", "done", "refused", "remaining")

    def __init__(self, size: int, done: asyncio.Future[None]) -> None:
        self.acked = [False] * size
        self.remaining = size
        self.refused = False
        self.done = done

    def ack(self, index: int, failed: bool) -> None:
        if failed:
            self.refused = True
        else:
            self.acked[index] = True
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)

    def prefix(self) -> int:
        """How many messages, from the first, are acknowledged."""
        try:
            return self.acked.index(False)
        except ValueError:
            return len(self.acked)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait before reconnecting: doubling from ``initial`` up to ``maximum`` seconds."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """The wait before reconnection attempt ``attempt`` (0 for the first after a drop)."""
        return float(min(self.maximum, self.initial * self.factor ** min(attempt, 64)))


def _content_type(value: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
    properties.ContentType = value
    return properties


class MqttBus:
    """A reconnecting MQTT connection: publishes at QoS 1 with a window, optional subscriptions.

    Use as ``async with MqttBus(config=...) as bus:``; entering starts the connection loop and
    does not wait for the broker (calls go on while it is down), :meth:`wait_connected` does.
    """

    def __init__(  # noqa: PLR0913 - every option is a keyword with a default
        self,
        *,
        config: BrokerConfig,
        client_id: str | None = None,
        instance: str | None = None,
        transient: bool = False,
        subscriptions: Sequence[str] = (),
        persistent: bool = False,
        manual_ack: bool = False,
        inflight: int = DEFAULT_INFLIGHT,
        topic_root: str = TOPIC_ROOT,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        keepalive: int = 30,
        backoff: Backoff | None = None,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        """Describe the connection; nothing happens until the bus is entered.

        ``instance`` names the retained status topic (none without it); a ``transient`` instance is
        named for one run and never comes back (a replayed scenario), so a clean close clears its
        status instead of leaving ``offline`` on the broker for ever. ``persistent`` keeps the
        broker-side session (subscriptions and unacked messages) across connections and needs a
        fixed ``client_id``. ``manual_ack`` holds each QoS 1 PUBACK until :meth:`Delivery.ack`.
        A message of more than ``max_message`` payload bytes is delivered by reference: its
        topic and size, never its bytes (:attr:`Delivery.oversize`).
        """
        if persistent and not client_id:
            msg = "a persistent session needs a fixed client_id"
            raise ValueError(msg)
        if inflight < 1:
            msg = f"the in-flight window must be at least 1, not {inflight}"
            raise ValueError(msg)
        self._config = config
        self._client_id = client_id
        self._status = status_topic(instance, root=topic_root) if instance else None
        self._farewell = CLEARED if transient else OFFLINE
        self._statuses = f"{status_root(root=topic_root)}/"
        self._root = topic_root
        self._kept: dict[str, None] = {}  # the status topics of the sources this connection carries, in order
        self._deadletters = deadletter_topic(root=topic_root)
        self._subscriptions = tuple(subscriptions)
        self._session = Session(
            client_id=client_id,
            persistent=persistent,
            manual_ack=manual_ack,
            will=(self._status, OFFLINE) if self._status else None,
            keepalive=keepalive,
            session_expiry=SESSION_EXPIRY,
            max_packet=max(_MAX_PACKET, 2 * max_message),
        )
        self._manual_ack = manual_ack
        self._inflight = inflight
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._backoff = backoff or Backoff()
        self._max_message = max_message
        self._window = asyncio.Semaphore(inflight)
        self._up = asyncio.Event()
        self._connection: MqttConnection | None = None
        self._lost: asyncio.Future[None] | None = None
        self._inbox = Inbox(skip_stale=manual_ack)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._awaited: dict[int, tuple[_Batch, int]] = {}  # message id -> its batch and place
        self._events = self._letters = self._plain = None
        if config.mqtt_version == MQTT5:
            self._events = _content_type(CLOUDEVENTS_CONTENT_TYPE)
            self._letters = _content_type("application/json")
            self._plain = _content_type("text/plain")
        #: The last CONNACK: over MQTT 5 it says what the broker offers (shared subscriptions).
        self.connack: Connack | None = None
        #: How many times a connection was established (1 + reconnections): for tests and metrics.
        self.connections = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the connection loop."""
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Say ``offline``, disconnect and stop reconnecting."""
        await self.aclose()

    def open(self) -> None:
        """Start the connection loop (idempotent while open; a closed bus cannot be reopened)."""
        if self._task is not None and self._task.done():
            msg = "this bus was closed; make a new one"
            raise RuntimeError(msg)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-bus:{self._client_id or 'anonymous'}")
            self._task.add_done_callback(self._end_inbox)

    async def aclose(self) -> None:
        """Publish ``offline`` if connected, disconnect cleanly and end :meth:`deliveries`."""
        task = self._task
        if task is None or task.done():
            self._finish_task(task)
            return
        connection = self._connection
        if connection is not None and self._up.is_set():
            self._closing = True  # the DISCONNECT below ends the connection: not a loss to reconnect from
            with contextlib.suppress(BusError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    if self._status:
                        await self.publish(self._status, self._farewell, retain=True)
                    connection.disconnect()
                    await connection.lost
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, BusError):  # a BusError was raised to wait_connected
            await task

    def _end_inbox(self, task: asyncio.Task[None]) -> None:
        """The connection loop ended: deliveries end too, with its error if it died of one."""
        self._inbox.close(None if task.cancelled() else task.exception())

    @staticmethod
    def _finish_task(task: asyncio.Task[None] | None) -> None:
        """Mark a failed loop's exception as seen: :meth:`wait_connected` is where it is raised."""
        if task is not None and task.done() and not task.cancelled():
            task.exception()

    @property
    def connected(self) -> bool:
        """Whether a connection is up now."""
        return self._up.is_set()

    @property
    def client_id(self) -> str | None:
        """The fixed client id the bus connects under (``None``: the broker picks one per connection)."""
        return self._client_id

    @property
    def status_topic(self) -> str | None:
        """The process's retained status topic, if it has one."""
        return self._status

    async def wait_connected(self) -> None:
        """Return once connected; raise :class:`BusRefusedError` if the broker refused us."""
        task = self._task
        if task is None:
            msg = "open the bus (async with) before waiting for it"
            raise RuntimeError(msg)
        try:
            await wait_unless_ended(self._up, task)
        except TaskEndedError:
            msg = "the bus was closed"
            raise BusUnavailableError(msg) from None

    async def wait_disconnected(self) -> None:
        """Return once the current connection is gone (at once if there is none): for tests and probes."""
        lost = self._lost
        if lost is not None and self._up.is_set():
            await asyncio.shield(lost)

    def break_connection(self) -> None:
        """Cut the current connection as a network failure would (no DISCONNECT): for fault tests."""
        if self._connection is not None:
            self._connection.abort()

    # -- the connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            before = self.connections
            try:
                await self._connect_once()
                error = "the connection was lost"
            except (OSError, BusUnavailableError, TimeoutError) as exc:
                error = str(exc) or type(exc).__name__
            if self._closing:
                return
            if self.connections > before:
                attempt = 0
            delay = self._backoff.delay(attempt)
            attempt += 1
            log.warning("bus disconnected", broker=str(self._config), error=error, retry_in=delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        """One connection, from CONNECT to its loss."""
        generation = self._inbox.new_generation()
        connection = MqttConnection(self._config, self._session, on_published=self._published)
        connection.on_message = self._receiver(generation, connection.paho.ack)
        try:
            connack = await connection.connect(self._connect_timeout)
            if connack.code:
                if connack.code in _REFUSED and not self.connections:
                    raise BusRefusedError(connack.code, connack.reason)
                msg = f"{self._config} refused the connection: {connack.reason} (code {connack.code})"
                raise BusUnavailableError(msg)
            self.connack, self._connection, self._lost = connack, connection, connection.lost
            if self._subscriptions:
                granted = await connection.subscribe(self._subscriptions)
                if any(code >= _SUBACK_FAILURE for code in granted):
                    msg = f"the broker refused a subscription to one of {list(self._subscriptions)!r}"
                    raise BusError(msg)
            if self._status:
                statuses = [self._status, *self._kept]
                await self._send(connection, [(topic, ONLINE) for topic in statuses], retain=True)
            self.connections += 1
            self._up.set()
            log.info("bus connected", broker=str(self._config), client_id=self._client_id, generation=self.connections)
            await connection.lost
        finally:
            self._up.clear()
            self._connection = None
            connection.abort()
            self._release_awaited()

    def _release_awaited(self) -> None:
        """The connection is gone: wake every publish still waiting for a PUBACK (each then fails)."""
        awaited, self._awaited = self._awaited, {}
        for batch, _ in awaited.values():
            if not batch.done.done():
                batch.done.set_result(None)

    def _published(self, mid: int, failed: bool) -> None:
        place = self._awaited.pop(mid, None)
        if place is not None:
            place[0].ack(place[1], failed)

    def _receiver(self, generation: int, ack: Callable[[int, int], object]) -> Callable[[MQTTMessage], None]:
        """How one connection's messages reach the inbox.

        An ack holds the connection's own client, so a message can be acked as soon as it arrives
        (a persistent session's backlog comes with the CONNACK, before subscribing ends), and does
        nothing once that connection is gone.
        """
        inbox, manual_ack, limit = self._inbox, self._manual_ack, self._max_message

        def if_current(mid: int) -> None:
            if generation == inbox.generation:
                ack(mid, 1)

        def on_message(message: MQTTMessage) -> None:
            size, payload, oversize = len(message.payload), b"", None
            if size > limit:
                oversize = size
                log.warning("message over the size limit discarded unread", topic=message.topic, size=size)
            else:
                payload = bytes(message.payload)
            on_ack = functools.partial(if_current, message.mid) if manual_ack and message.qos else None
            inbox.put(
                generation,
                Delivery(topic=message.topic, payload=payload, retain=message.retain, on_ack=on_ack, oversize=oversize),
            )

        return on_message

    # -- the Bus protocol ------------------------------------------------------------------

    def _properties(self, topic: str) -> Properties | None:
        if topic.startswith(self._statuses):  # whoever's status it is, even cleared
            return self._plain
        if topic == self._deadletters:
            return self._letters
        return self._events

    async def _send(
        self, connection: MqttConnection, messages: Sequence[tuple[str, bytes | str]], *, retain: bool = False
    ) -> None:
        """Publish ``messages`` on ``connection`` and wait for every PUBACK; :class:`PartlyPublishedError` otherwise."""
        batch = _Batch(len(messages), asyncio.get_running_loop().create_future())
        awaited, publish, lost = self._awaited, connection.paho.publish, connection.lost
        mids = []
        try:
            for index, (topic, payload) in enumerate(messages):
                info = publish(topic, payload, 1, retain, self._properties(topic))
                if info.rc:
                    raise PartlyPublishedError(0, BusUnavailableError(f"not connected to {self._config}"))
                awaited[info.mid] = (batch, index)
                mids.append(info.mid)
            if not lost.done():
                waiting = (batch.done, lost)
                await asyncio.wait(waiting, timeout=self._publish_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for mid in mids:
                awaited.pop(mid, None)
        acked = batch.prefix()
        if acked == len(messages):
            return
        cause: BusError
        if batch.refused:
            cause = BusError(f"the broker refused the message on {messages[acked][0]!r}")
        elif lost.done():
            cause = BusUnavailableError(f"connection to {self._config} lost before every PUBACK")
        else:
            # An open connection that acknowledges nothing for this long is stuck (a broker that
            # went silent on it, a half-dead route): give it up, so the loop connects anew and the
            # caller's retry has somewhere to go, instead of timing out on it for ever.
            cause = PublishTimeoutError(messages[acked][0], self._publish_timeout)
            log.warning("no PUBACK in time, reconnecting", broker=str(self._config), timeout=self._publish_timeout)
            connection.abort()
        raise PartlyPublishedError(acked, cause)

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1; return on PUBACK, raise :class:`BusError` if none can come."""
        async with self._window:
            connection = self._connection
            if connection is None or connection.lost.done():
                msg = f"not connected to {self._config}"
                raise BusUnavailableError(msg)
            try:
                await self._send(connection, [(topic, payload)], retain=retain)
            except PartlyPublishedError as exc:
                raise exc.cause from None

    async def publish_many(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        """Publish in order at QoS 1 on one connection, a window at a time; return when every PUBACK is in.

        Raises :class:`PartlyPublishedError` with the acknowledged prefix when the connection is
        missing or drops, or the PUBACKs take longer than the publish timeout.
        """
        connection = self._connection
        for start in range(0, len(messages), self._inflight):
            if connection is None or connection is not self._connection:
                raise PartlyPublishedError(start, BusUnavailableError(f"not connected to {self._config}"))
            try:
                await self._send(connection, messages[start : start + self._inflight])
            except PartlyPublishedError as exc:
                raise PartlyPublishedError(start + exc.acked, exc.cause) from exc.cause

    # -- the statuses of the sources this connection carries ---------------------------------

    def carried_status(self, instance: str) -> str:
        """The status topic of a source this connection carries; a :class:`ValueError` unless named under its own."""
        topic = status_topic(instance, root=self._root)
        if not self._status or not topic.startswith(f"{self._status}/"):
            msg = f"a source carried by this connection is named under its instance, not {instance!r}"
            raise ValueError(msg)
        return topic

    async def keep_status(self, instance: str) -> None:
        """Say ``instance`` is ``online`` (retained), now and after each reconnection, until :meth:`drop_status`.

        For a source this connection carries (a console's world), named under its own instance: a
        Last Will is the connection's, so its ``offline``, one level up, speaks for the source too.
        Raises :class:`BusError` if the broker is not there to tell now (the next connection will).
        """
        topic = self.carried_status(instance)
        if topic not in self._kept:
            self._kept[topic] = None
            await self.publish(topic, ONLINE, retain=True)

    async def drop_status(self, instance: str) -> None:
        """Clear ``instance``'s retained status: the source has ended, and its name never comes back.

        Raises :class:`BusError` if the broker is not there; the status is then left for
        :meth:`leftover_status` to find on a later connection.
        """
        topic = self.carried_status(instance)
        self._kept.pop(topic, None)
        await self.publish(topic, CLEARED, retain=True)

    def leftover_status(self, delivery: Delivery) -> str | None:
        """The instance of a retained status under this connection's own that it does not keep, if ``delivery`` is one.

        What a crashed run of this process left (its Will spoke for itself only), or a status
        whose clearing the broker never got: the subscriber clears it with :meth:`drop_status`.
        """
        status = self._status
        if (
            status is None
            or not delivery.retain
            or not delivery.payload
            or not delivery.topic.startswith(f"{status}/")
            or delivery.topic in self._kept
        ):
            return None
        return delivery.topic.removeprefix(self._statuses)

    def deliveries(self) -> AsyncIterator[Delivery]:
        """Messages from the subscriptions, across reconnections, until the bus is closed.

        With manual ack, messages of a connection that has since dropped are skipped here: they
        were never acked, so the broker sends them again on the new connection.
        """
        return self._inbox.deliveries()

    def batches(self, limit: int) -> AsyncIterator[list[Delivery]]:
        """:meth:`deliveries` in batches of whatever has arrived, at most ``limit`` each."""
        return self._inbox.batches(limit)


async def forget_session(config: BrokerConfig, client_id: str) -> None:
    """Drop ``client_id``'s persistent session: connect once with a clean session under its id.

    Whoever made a short-lived persistent session (a replayed scenario, a load run) drops it, or
    the broker keeps queueing messages for a client that never comes back.
    """
    with contextlib.suppress(OSError, TimeoutError):
        await connect_once(config, Session(client_id=client_id), 5.0)


async def probe(config: BrokerConfig, *, client_id: str | None = None, timeout: float) -> Connack:
    """Connect once and leave: the CONNACK when the broker accepts, :class:`BusError` saying why not.

    One attempt, no reconnection: a command about to rely on a broker asks first, so a wrong
    address is an error at once instead of a process retrying in silence.
    """
    try:
        connack = await connect_once(config, Session(client_id=client_id), timeout)
    except ClosedBeforeConnackError as exc:
        if config.mqtt_version != MQTT5:
            msg = f"no MQTT broker answers at {config}: {exc}"
            raise BusUnavailableError(msg) from None
        msg = f"the broker at {config} closed an MQTT 5 connection unanswered: it speaks MQTT 3.1.1 only"
        raise MqttVersionRefusedError(msg) from None
    except TimeoutError:
        msg = f"no MQTT broker answers at {config} (waited {timeout:g} s)"
        raise BusUnavailableError(msg) from None
    except OSError as exc:
        msg = f"no MQTT broker answers at {config}: {exc}"
        raise BusUnavailableError(msg) from None
    if connack.code in _REFUSED:
        raise BusRefusedError(connack.code, connack.reason)
    if connack.code:
        msg = f"the broker at {config} refused the connection: {connack.reason} (code {connack.code})"
        raise BusUnavailableError(msg)
    return connack
