"""One MQTT connection: paho-mqtt's client driven by the asyncio loop through paho's public socket callbacks.

paho reads and writes when told its socket is ready (``loop_read``, ``loop_write``), keeps the
connection alive in ``loop_misc``, and says through ``on_socket_*`` when its socket opens, closes
and has bytes to write: the loop watches the socket accordingly. That is how aiomqtt drives paho,
here without a thread per connection and without reaching into either library. One instance is
one connection; reconnecting makes a new one, so nothing half-sent survives a drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from paho.mqtt.client import MQTT_ERR_SUCCESS, Client, MQTTMessage, MQTTv5, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ivr.bus.url import MQTT5

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ivr.bus.url import BrokerConfig

__all__ = ["ClosedBeforeConnackError", "Connack", "MqttConnection", "Session", "connect_once", "ssl_context"]

#: Packets read per readiness callback at most, so one busy connection cannot starve the loop.
_READ_BURST: Final = 1000
_MISC_INTERVAL: Final = 1.0


@dataclass(frozen=True, slots=True)
class Connack:
    """The broker's answer to CONNECT: its reason code (0 accepted) and, over MQTT 5, its properties."""

    code: int
    reason: str
    properties: Properties | None

    @property
    def shared_subscriptions(self) -> bool:
        """Whether the broker grants ``$share/...`` subscriptions: MQTT 5 only, unless it says 0."""
        if self.properties is None:
            return False
        return getattr(self.properties, "SharedSubscriptionAvailable", 1) != 0


class ClosedBeforeConnackError(ConnectionError):
    """The broker took the connection and closed it without answering CONNECT.

    RabbitMQ 3.10 answers an MQTT 5 CONNECT so, where MQTT 3.1.1 asks for a CONNACK refusing the
    protocol version first (:mod:`ivr.bus.shared` tells the two causes apart).
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """What a connection asks of the broker besides the address: identity, session, will, acks."""

    client_id: str | None = None
    persistent: bool = False
    manual_ack: bool = False
    #: Retained at QoS 1 by the broker when the connection dies without a DISCONNECT.
    will: tuple[str, bytes] | None = None
    keepalive: int = 30
    #: MQTT 5: how long the broker keeps a persistent session after its client leaves.
    session_expiry: int = 0
    #: MQTT 5: the largest packet this client accepts; the broker withholds larger ones.
    max_packet: int | None = None


class _ClosedOnFailedHandshake(ssl.SSLSocket):
    """A TLS socket that closes itself when its handshake fails.

    paho's ``connect`` drops the socket it was handshaking on when the handshake raises (a
    certificate that does not verify, a broker that wants a client certificate), leaving it
    open until the garbage collector finds it; ``SSLContext.sslsocket_class`` is the standard
    library's own way to say what a context's sockets are.
    """

    def do_handshake(self, block: bool = False) -> None:  # noqa: FBT002 - SSLSocket's signature
        """Handshake; on failure close the socket before raising."""
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def ssl_context(config: BrokerConfig) -> ssl.SSLContext:
    """The TLS context for ``mqtts://``: the configured CA file (or the system's), an optional client certificate."""
    context = ssl.create_default_context(cafile=None if config.ca_file is None else str(config.ca_file))
    context.sslsocket_class = _ClosedOnFailedHandshake
    if config.cert_file is not None:
        context.load_cert_chain(str(config.cert_file), None if config.key_file is None else str(config.key_file))
    return context


class MqttConnection:
    """A paho client on the running loop: :meth:`connect`, then paho's own public API through :attr:`paho`.

    :attr:`on_message` gets each PUBLISH (paho acks it after the call unless the session's
    ``manual_ack``); ``on_published(mid, failed)`` gets each PUBACK of a QoS 1 publish.
    :attr:`lost` completes when the connection is gone, however it went.
    """

    def __init__(
        self,
        config: BrokerConfig,
        session: Session,
        *,
        on_published: Callable[[int, bool], None],
    ) -> None:
        """Make the client; nothing is sent until :meth:`connect`."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._config = config
        self._session = session
        self.v5 = config.mqtt_version == MQTT5
        paho = Client(
            CallbackAPIVersion.VERSION2,
            client_id=session.client_id or "",
            clean_session=None if self.v5 else not session.persistent,
            protocol=MQTTv5 if self.v5 else MQTTv311,
            manual_ack=session.manual_ack,
        )
        # No limits in paho: the window of publishes in flight is the bus's.
        paho.max_inflight_messages_set(0)
        paho.max_queued_messages_set(0)
        if config.username is not None:
            paho.username_pw_set(config.username, config.password)
        if session.will is not None:
            paho.will_set(session.will[0], session.will[1], qos=1, retain=True)
        if config.tls:
            paho.tls_set_context(ssl_context(config))
        paho.on_socket_open = self._opened
        paho.on_socket_close = self._closed
        paho.on_socket_register_write = self._want_write
        paho.on_socket_unregister_write = self._written
        paho.on_connect = self._connack
        paho.on_disconnect = self._disconnected
        paho.on_subscribe = self._suback
        paho.on_publish = self._puback
        paho.on_message = self._message
        self.paho = paho
        #: Called with each message received; set it before :meth:`connect` (a backlog comes with the CONNACK).
        self.on_message: Callable[[MQTTMessage], None] = lambda _: None
        self._on_published = on_published
        self._answer: asyncio.Future[Connack | None] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        #: Completes (with ``None``) when the connection is gone.
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._socket: Any = None
        self._writing = False
        self._misc: asyncio.Task[None] | None = None
        self._handled = 0  # packets handled: how a read burst knows it is making progress

    # -- connecting and leaving -------------------------------------------------------------

    async def connect(self, timeout: float) -> Connack:
        """Open the socket, send CONNECT and return the CONNACK; ``ConnectionError`` if none comes.

        paho's ``connect`` blocks on the TCP (and TLS) handshake, so it runs on a worker thread;
        everything after it runs on the loop.
        """
        session = self._session
        options: dict[str, Any] = {}
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
            if session.persistent:
                properties.SessionExpiryInterval = session.session_expiry
            if session.max_packet is not None:
                properties.MaximumPacketSize = session.max_packet
            options = {"clean_start": not session.persistent, "properties": properties}
        connect = functools.partial(
            self.paho.connect,
            self._config.host,
            self._config.port,
            session.keepalive,
            **options,
        )
        self.paho.connect_timeout = timeout
        try:
            async with asyncio.timeout(timeout):
                await self._loop.run_in_executor(None, connect)
                answer = await asyncio.shield(self._answer)
        except BaseException:
            self.abort()
            raise
        if answer is None:
            msg = f"{self._config} closed the connection before answering CONNECT"
            raise ClosedBeforeConnackError(msg)
        return answer

    async def subscribe(self, filters: Sequence[str]) -> list[int]:
        """Subscribe to ``filters`` at QoS 1 in one SUBSCRIBE; the granted QoS (or failure code) of each."""
        options: Any = SubscribeOptions(qos=1) if self.v5 else 1
        rc, mid = self.paho.subscribe([(f, options) for f in filters])
        if rc != MQTT_ERR_SUCCESS or mid is None:
            msg = f"not connected to {self._config}"
            raise ConnectionError(msg)
        suback: asyncio.Future[list[int]] = self._loop.create_future()
        self._subacks[mid] = suback
        await asyncio.wait((suback, self.lost), return_when=asyncio.FIRST_COMPLETED)
        if not suback.done():
            msg = f"connection to {self._config} lost before the SUBACK"
            raise ConnectionError(msg)
        return suback.result()

    def disconnect(self) -> None:
        """Send DISCONNECT (so the broker drops the Last Will); :attr:`lost` completes once it is written."""
        self.paho.disconnect()

    def abort(self) -> None:
        """Break the connection without a DISCONNECT, as a network failure would: the Last Will applies.

        paho then reads the end of the stream at once, so its socket is closed before this returns.
        """
        sock = self.paho.socket()
        if isinstance(sock, socket.socket):  # a TLS socket is one too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            for _ in range(_READ_BURST):
                if self.paho.socket() is None or self.paho.loop_read() != MQTT_ERR_SUCCESS:
                    break
        self._gone()

    # -- paho's callbacks -------------------------------------------------------------------

    def _on_loop(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the loop: paho calls from the thread that ran ``connect`` too."""
        if threading.get_ident() == self._thread:
            call()
        else:
            self._loop.call_soon_threadsafe(call)

    def _opened(self, client: Client, userdata: Any, sock: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        fileno: int = sock.fileno()

        def watch() -> None:
            if self.lost.done() or self.paho.socket() is not sock:  # given up on while paho was connecting
                self.abort()
                return
            self._socket = sock
            self._loop.add_reader(fileno, self._readable)
            self._misc = self._loop.create_task(self._keep_alive(), name="mqtt-keepalive")

        self._on_loop(watch)

    def _closed(self, client: Client, userdata: Any, sock: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        fileno = sock.fileno()
        # From paho's connecting thread, the loop watches nothing of this socket yet (see _opened).
        if fileno >= 0 and threading.get_ident() == self._thread:
            self._loop.remove_reader(fileno)
            self._loop.remove_writer(fileno)
        self._writing = False
        self._socket = None
        self._on_loop(self._gone)

    def _want_write(self, client: Client, userdata: Any, sock: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        if self._writing:
            return
        self._writing = True
        if threading.get_ident() == self._thread:
            self._loop.call_soon(self._flush, sock)
        else:  # paho's connecting thread, queueing CONNECT
            self._loop.call_soon_threadsafe(self._flush, sock)

    def _flush(self, sock: Any) -> None:  # noqa: ANN401 - paho's socket
        """Write what paho has queued, once per turn of the loop; watch the socket only if it is full.

        A window of publishes is queued in one turn, so it goes out in one ``loop_write``.
        """
        fileno: int = sock.fileno()
        if self.paho.socket() is not sock:  # closed since paho asked, maybe from its connecting thread
            self._writing = False
            return
        self._writable()
        if self._writing and self.paho.want_write():
            self._loop.add_writer(fileno, self._writable)

    def _written(self, client: Client, userdata: Any, sock: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        if self._writing:
            self._writing = False
            self._loop.remove_writer(sock.fileno())

    def _readable(self) -> None:
        """Read what has arrived: packet after packet while they keep coming (paho reads one per call)."""
        paho, sock = self.paho, self._socket
        pending = getattr(sock, "pending", None)  # TLS: bytes decrypted already, which the selector cannot see
        try:
            for _ in range(_READ_BURST):
                handled = self._handled
                if paho.loop_read() != MQTT_ERR_SUCCESS:
                    return
                if handled == self._handled and not (pending and pending()):
                    return
        except OSError:
            self.abort()

    def _writable(self) -> None:
        try:
            self.paho.loop_write()
        except OSError:
            self.abort()

    async def _keep_alive(self) -> None:
        while self.paho.loop_misc() == MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - paho's keepalive wants a tick, not an event
            await asyncio.sleep(_MISC_INTERVAL)

    def _connack(self, client: Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        self._handled += 1
        if not self._answer.done():
            code = int(reason.value)
            self._answer.set_result(Connack(code, str(reason), properties if self.v5 else None))

    def _disconnected(self, client: Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        self._on_loop(self._gone)

    def _gone(self) -> None:
        if not self._answer.done():
            self._answer.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)
        if self._misc is not None:
            self._misc.cancel()

    def _suback(self, client: Client, userdata: Any, mid: int, codes: Any, properties: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        self._handled += 1
        suback = self._subacks.pop(mid, None)
        if suback is not None and not suback.done():
            suback.set_result([int(code.value) for code in codes])

    def _puback(self, client: Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:  # noqa: ANN401, ARG002 - paho's callback
        self._handled += 1
        self._on_published(mid, reason.is_failure)

    def _message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:  # noqa: ANN401, ARG002 - paho's callback
        self._handled += 1
        self.on_message(message)


async def connect_once(config: BrokerConfig, session: Session, timeout: float) -> Connack:
    """Connect, read the CONNACK and leave cleanly: one attempt, no reconnection.

    Raises ``OSError`` (no broker, TLS refused, closed before answering) or ``TimeoutError``.
    """
    connection = MqttConnection(config, session, on_published=lambda *_: None)
    try:
        connack = await connection.connect(timeout)
        if not connack.code:
            connection.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await connection.lost
        return connack
    finally:
        connection.abort()
