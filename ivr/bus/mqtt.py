"""The :class:`~ivr.bus.base.Bus` over MQTT 3.1.1, through aiomqtt (paho-mqtt underneath).

aiomqtt gives one connection per ``async with``; this adapter adds what an always-on process
needs, each for a reason we measured or were bitten by:

- **Reconnection.** aiomqtt has none: the client is entered again in a loop, with backoff, for as
  long as the bus is open. Each connection is a fresh client, so nothing half-sent survives one;
  the outbox (not the MQTT client) is what remembers unsent events.
- **A window of publishes in flight** (100 by default): one publish at a time reaches ~5,500
  msg/s against Mosquitto, a window of ~100 with ``set_tcp_nodelay`` ~14,000. A publish returns
  only when its PUBACK arrives, and fails at once, not after a timeout, when the connection drops.
- **Manual acknowledgement.** aiomqtt acks a QoS 1 message before our code sees it, so a consumer
  that crashes before its commit would lose it. Paho's manual ack (aiomqtt issue #345) holds the
  PUBACK until :meth:`Delivery.ack`; with a persistent session (``clean_session=False`` and a
  fixed client id) the broker sends an unacked message again after a reconnect.
- **Status.** ``ivr/v1/status/<instance>`` is retained ``online`` once connected; the Last Will
  makes it ``offline`` when the connection dies, and a clean close says ``offline`` itself.
- **Batches without a coroutine per message.** :meth:`MqttBus.publish_many` writes a window of
  messages as one packet entry (:mod:`ivr.bus.outbound`) and waits on one future that their
  PUBACKs resolve, taken off the wire by the intake. aiomqtt's ``publish`` costs a task, an
  ``asyncio.Event`` and a ``wait_for`` per message (the outbox relay spent ~130 µs of CPU per
  event that way), and paho's own another ~four objects and a lock (docs/performance.md).
- **Messages straight into an inbox** (:mod:`ivr.bus.inbox`) from the intake (below), taken one
  at a time or in batches, instead of through aiomqtt's iterator (a task per message).
- **A read-ahead socket** (:mod:`ivr.bus.readahead`): one ``recv`` for many packets, and
  **PUBLISHes taken off the wire** there (:mod:`ivr.bus.intake`) without paho's per-message work,
  their PUBACKs sent together.
- **PUBACKs read as two bytes** (:mod:`ivr.bus.puback`), not as paho's two objects each.
- **A size limit of its own** (:data:`~ivr.bus.base.MAX_MESSAGE`): MQTT 5 would let us tell the
  broker our Maximum Packet Size, 3.1.1 has no such thing. A larger message is discarded as it
  streams in, never held whole, and delivered by reference: its topic and size.

MQTT 3.1.1 rather than 5: the amqtt fallback broker speaks only 3.1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self

import aiomqtt
import structlog
from paho.mqtt.client import PUBLISH
from paho.mqtt.reasoncodes import ReasonCode

from ivr.bus.base import (
    MAX_MESSAGE,
    OFFLINE,
    ONLINE,
    BusError,
    BusRefusedError,
    BusUnavailableError,
    Delivery,
    PartlyPublishedError,
    PublishTimeoutError,
    TaskEndedError,
    status_topic,
    wait_unless_ended,
)
from ivr.bus.coalesce import coalesced_writes
from ivr.bus.inbox import Inbox
from ivr.bus.intake import Intake, PubackQueue
from ivr.bus.outbound import encode_publishes
from ivr.bus.puback import lean_pubacks
from ivr.bus.readahead import read_ahead
from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from types import TracebackType

    from paho.mqtt.client import MQTTMessage

    from ivr.bus.url import BrokerConfig

__all__ = ["DEFAULT_INFLIGHT", "Backoff", "MqttBus", "forget_session", "probe"]

#: Publishes awaiting their PUBACK at once; ~100 is where Mosquitto's throughput levels off.
DEFAULT_INFLIGHT: Final = 100
_SUBACK_FAILURE: Final = 0x80
#: CONNACK codes that retrying cannot fix (3.1.1 values, then paho's MQTT 5 translations).
_REFUSED: Final = frozenset({1, 2, 4, 5, 0x84, 0x85, 0x86, 0x87, 0x8C})
_CLOSE_TIMEOUT: Final = 2.0

log = structlog.get_logger("ivr.bus.mqtt")


class _Batch:
    """One :meth:`MqttBus.publish_many` call: which of its messages the broker has acknowledged."""

    __slots__ = ("acked", "done", "remaining")

    def __init__(self, size: int, done: asyncio.Future[None]) -> None:
        self.acked = [False] * size
        self.remaining = size
        self.done = done

    def ack(self, index: int) -> None:
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


def _raise_if_cancelled() -> None:
    """Raise the cancellation that Python 3.11's ``asyncio.wait_for`` may have swallowed.

    aiomqtt waits for each CONNACK, SUBACK and PUBACK with ``wait_for``; in 3.11, a task
    cancelled just as that reply arrives gets the reply and loses the cancellation (fixed in
    3.12). The task still says it is ``cancelling()``: a bus being closed then sat in a fresh
    connection forever (seen as a hung ``aclose`` in the contract tests).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _code(rc: object) -> int | None:
    """A paho return code or reason code as a plain int."""
    if isinstance(rc, ReasonCode):
        return int(rc.value)
    return rc if isinstance(rc, int) else None


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

        ``instance`` names the retained status topic (none without it). ``persistent`` keeps the
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
        self._subscriptions = tuple(subscriptions)
        self._persistent = persistent
        self._manual_ack = manual_ack
        self._inflight = inflight
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._backoff = backoff or Backoff()
        self._max_message = max_message
        self._window = asyncio.Semaphore(inflight)
        self._up = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        self._inbox = Inbox(skip_stale=manual_ack)
        self._task: asyncio.Task[None] | None = None
        self._stray: set[asyncio.Task[Any]] = set()
        self._batched: dict[int, tuple[_Batch, int]] = {}  # paho message id -> its batch and place
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
        if self._status and self._up.is_set():
            with contextlib.suppress(BusError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self.publish(self._status, OFFLINE, retain=True)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, BusError):  # a BusError was raised to wait_connected
            await task
        for stray in self._stray:
            stray.cancel()

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

    # -- the connection loop ---------------------------------------------------------------

    def _make_client(self, generation: int) -> aiomqtt.Client:
        will = aiomqtt.Will(self._status, OFFLINE, qos=1, retain=True) if self._status else None
        client = aiomqtt.Client(
            self._config.host,
            self._config.port,
            username=self._config.username,
            password=self._config.password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=not self._persistent,
            keepalive=self._keepalive,
            timeout=self._connect_timeout,
            # 0: no limit in paho. Its limit costs a scan of every unacknowledged message on each
            # PUBACK (``_update_inflight``: a third of the relay's CPU with 1,000 in flight); the
            # window is ours instead: the semaphore for ``publish``, chunks for ``publish_many``.
            max_inflight_messages=0,
            # paho leaves Nagle on: each small QoS 1 publish then waits for the previous ACK's
            # segment. Off, the median ticket.created -> deducted went from ~45 ms to ~4 ms here.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # aiomqtt warns past 10 pending calls; a full window is normal here, not a concern.
        client.pending_calls_threshold = self._inflight + 10
        if self._manual_ack:
            # Set before connecting: a persistent session's queued messages arrive with the CONNACK.
            client._client.manual_ack_set(on=True)  # noqa: SLF001 - aiomqtt exposes no manual ack (#345)
        deliver, too_large, client._client.on_message = self._receivers(generation, client._client)  # noqa: SLF001 - see ivr.bus.inbox
        intake = Intake(deliver, self._acked, too_large=too_large, limit=self._max_message)
        read_ahead(client._client, intake)  # noqa: SLF001 - see ivr.bus.readahead, ivr.bus.intake
        lean_pubacks(client._client)  # noqa: SLF001 - see ivr.bus.puback
        coalesced_writes(client._client)  # noqa: SLF001 - see ivr.bus.coalesce
        return client

    def _acked(self, mid: int) -> bool:
        """A PUBACK came: ``True`` if it is for a message of :meth:`publish_many` (then it is counted)."""
        place = self._batched.pop(mid, None)
        if place is None:
            return False
        place[0].ack(place[1])
        return True

    def _receivers(
        self,
        generation: int,
        paho: Any,  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
    ) -> tuple[
        Callable[[str, bytes, int, int, bool], None],
        Callable[[str, int, int, int, bool], None],
        Callable[[Any, Any, MQTTMessage], None],
    ]:
        """How one connection's messages reach the inbox: the intake's two callbacks, and paho's ``on_message``.

        The intake (:mod:`ivr.bus.intake`) takes every PUBLISH at QoS 0 and 1; paho's own path is
        left what the intake passes on, a PUBLISH at QoS 2 (which our QoS 1 subscriptions never
        get) or one with a topic that is not UTF-8. An ack holds the connection's own client, so a
        message can be acked as soon as it arrives (a persistent session's backlog comes with the
        CONNACK, before subscribing ends), and does nothing once that connection is gone.
        """
        inbox, manual_ack = self._inbox, self._manual_ack
        pubacks = PubackQueue(paho)

        def if_current(ack: Callable[..., object], *args: int) -> None:
            if generation == inbox.generation:
                ack(*args)

        def put(topic: str, payload: bytes, retain: bool, on_ack: Callable[[], None] | None) -> None:
            inbox.put(generation, Delivery(topic=topic, payload=payload, retain=retain, on_ack=on_ack))

        def deliver(topic: str, payload: bytes, mid: int, qos: int, retain: bool) -> None:
            if qos and not manual_ack:
                pubacks.ack(mid)  # acked on receipt, as paho would
            put(topic, payload, retain, functools.partial(if_current, pubacks.ack, mid) if qos and manual_ack else None)

        def too_large(topic: str, size: int, mid: int, qos: int, retain: bool) -> None:
            log.warning("message over the size limit discarded unread", topic=topic, size=size)
            if qos and not manual_ack:
                pubacks.ack(mid)
            on_ack = functools.partial(if_current, pubacks.ack, mid) if qos and manual_ack else None
            delivery = Delivery(topic=topic, payload=b"", retain=retain, on_ack=on_ack, oversize=size)
            inbox.put(generation, delivery)

        def on_message(client: Any, userdata: Any, message: MQTTMessage) -> None:  # noqa: ANN401, ARG001 - paho's callback
            qos = message.qos
            ack = functools.partial(if_current, client.ack, message.mid, qos) if manual_ack and qos else None
            put(message.topic, bytes(message.payload), message.retain, ack)

        return deliver, too_large, on_message

    async def _run(self) -> None:
        attempt = 0
        while True:
            before = self.connections
            try:
                await self._connection()
            except aiomqtt.MqttError as exc:
                # aiomqtt's exit waits for the disconnection and may raise its error over our
                # cancellation: reconnecting then would keep a closed bus alive forever.
                _raise_if_cancelled()
                code = _code(getattr(exc, "rc", None))
                if isinstance(exc, aiomqtt.MqttCodeError) and not self.connections and code in _REFUSED:
                    raise BusRefusedError(code or 0, str(exc)) from None
                if self.connections > before:
                    attempt = 0
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning("bus disconnected", broker=str(self._config), error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _connection(self) -> None:
        """One connection, from CONNECT to its loss."""
        client = self._make_client(self._inbox.new_generation())
        async with client:
            for topic_filter in self._subscriptions:
                granted = await client.subscribe(topic_filter, qos=1)
                if any((_code(g) or 0) >= _SUBACK_FAILURE for g in granted):
                    msg = f"the broker refused the subscription to {topic_filter!r}"
                    raise BusError(msg)
            if self._status:
                await client.publish(self._status, ONLINE, qos=1, retain=True, timeout=self._publish_timeout)
            self._client, self._lost = client, asyncio.get_running_loop().create_future()
            self.connections += 1
            self._up.set()
            log.info("bus connected", broker=str(self._config), client_id=self._client_id, generation=self.connections)
            try:
                _raise_if_cancelled()
                # Messages go to the inbox (``_receiver``), so aiomqtt's queue stays empty: its
                # iterator is only how aiomqtt reports that the connection is lost.
                async for _ in client.messages:
                    pass
            finally:
                self._up.clear()
                self._client = None
                if not self._lost.done():
                    self._lost.set_result(None)

    # -- the Bus protocol ------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1; return on PUBACK, raise :class:`BusError` if none can come."""
        async with self._window:
            client, lost = self._client, self._lost
            if client is None or lost is None or lost.done():
                msg = f"not connected to {self._config}"
                raise BusUnavailableError(msg)
            sending = asyncio.ensure_future(
                client.publish(topic, payload, qos=1, retain=retain, timeout=self._publish_timeout),
            )
            try:
                await asyncio.wait((sending, lost), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                sending.cancel()
                raise
            if not sending.done():
                sending.cancel()
                self._stray.add(sending)
                sending.add_done_callback(self._stray.discard)
                msg = f"connection to {self._config} lost before the PUBACK for {topic!r}"
                raise BusUnavailableError(msg)
            error = sending.exception()
            if error is None:
                return
            if isinstance(error, aiomqtt.MqttCodeError):
                raise BusUnavailableError(str(error)) from error
            if isinstance(error, aiomqtt.MqttError):
                raise PublishTimeoutError(topic, self._publish_timeout) from error
            raise error

    async def publish_many(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        """Publish in order at QoS 1 on one connection, a window at a time; return when every PUBACK is in.

        Raises :class:`PartlyPublishedError` with the acknowledged prefix when the connection is
        missing or drops, or the PUBACKs take longer than the publish timeout.
        """
        for start in range(0, len(messages), self._inflight):
            try:
                await self._publish_window(messages[start : start + self._inflight])
            except PartlyPublishedError as exc:
                raise PartlyPublishedError(start + exc.acked, exc.cause) from exc.cause

    async def _publish_window(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        client, lost = self._client, self._lost
        if client is None or lost is None or lost.done():
            raise PartlyPublishedError(0, BusUnavailableError(f"not connected to {self._config}"))
        batch = _Batch(len(messages), asyncio.get_running_loop().create_future())
        paho = client._client  # noqa: SLF001 - see ivr.bus.outbound
        mids, packets = encode_publishes(paho, messages)
        try:
            for index, mid in enumerate(mids):
                self._batched[mid] = (batch, index)
            paho._packet_queue(PUBLISH, packets, 0, 1)  # noqa: SLF001 - one entry for the window; see ivr.bus.outbound
            await asyncio.wait((batch.done, lost), timeout=self._publish_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for mid in mids:
                self._batched.pop(mid, None)
        if batch.done.done():
            return
        cause: BusError
        if lost.done():
            cause = BusUnavailableError(f"connection to {self._config} lost before every PUBACK")
        else:
            cause = PublishTimeoutError(messages[batch.prefix()][0], self._publish_timeout)
        raise PartlyPublishedError(batch.prefix(), cause)

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
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password,
            identifier=client_id,
            clean_session=True,
            protocol=aiomqtt.ProtocolVersion.V311,
            timeout=5,
        ):
            pass


async def probe(config: BrokerConfig, *, client_id: str | None = None, timeout: float) -> None:
    """Connect once and leave: return when the broker answers, raise :class:`BusError` saying why not.

    One attempt, no reconnection: a command about to rely on a broker asks first, so a wrong
    address is an error at once instead of a process retrying in silence.
    """
    try:
        async with (
            asyncio.timeout(timeout),
            aiomqtt.Client(
                config.host,
                config.port,
                username=config.username,
                password=config.password,
                identifier=client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=True,
                timeout=timeout,
            ),
        ):
            pass
    except TimeoutError:
        msg = f"no MQTT broker answers at {config} (waited {timeout:g} s)"
        raise BusUnavailableError(msg) from None
    except aiomqtt.MqttCodeError as exc:
        code = _code(getattr(exc, "rc", None))
        if code in _REFUSED:
            raise BusRefusedError(code or 0, str(exc)) from None
        msg = f"no MQTT broker answers at {config}: {exc}"
        raise BusUnavailableError(msg) from None
    except aiomqtt.MqttError as exc:
        msg = f"no MQTT broker answers at {config}: {exc}"
        raise BusUnavailableError(msg) from None
