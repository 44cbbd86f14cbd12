"""Incoming PUBLISHes and PUBACKs taken off the wire in bulk, before paho reads the rest; PUBACKs sent together.

paho handles each incoming message in Python of its own: its type byte, each length byte and its
body each a read, then a decoded packet, an ``MQTTMessage``, a debug-log call, the topic matched
against callback filters, ``on_message``; then, with manual ack, a PUBACK queued on its own. In
the ledger's loop that was 40 % of the samples and the acks another 3.5 % (docs/performance.md,
round 5), for a packet whose whole meaning is four fields.

So the read-ahead socket (:mod:`ivr.bus.readahead`) hands each chunk it reads to an
:class:`Intake` first. Every complete MQTT 3.1.1 PUBLISH at QoS 0 or 1 in it is decoded here, in
one pass, and handed to ``deliver``, and the PUBACK of each publish the bus wrote itself
(:mod:`ivr.bus.outbound`) is handed to ``acked``; every other packet (CONNACK, SUBACK, the PUBACK
of paho's own publishes, PINGRESP, a PUBLISH at QoS 2, one whose topic is not UTF-8) is passed on
to paho whole and in order, so paho's state machine sees a stream of complete packets and keeps
its own handling of them. A packet cut by the end of a read is held until the rest arrives.

A PUBLISH whose payload is over the size limit is never held: once its topic has arrived, the
rest of it is discarded as it streams in, and ``too_large`` is told its topic and size when it has
passed, so a consumer can dead-letter it by reference. Held whole, a message of many megabytes
would cost its size in memory, and more in the copies of what was held as each read is appended.
Any other packet over the limit is no packet a broker sends: the connection is dropped.

:class:`PubackQueue` collects the message ids acknowledged during one turn of the event loop and
queues their PUBACKs to paho as one packet entry, where ``paho.ack`` queued one entry per message.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, Final

from paho.mqtt.client import PUBACK

from ivr.bus.base import MAX_MESSAGE

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Intake", "OversizedPacketError", "PubackQueue"]

_PUBLISH: Final = 0x30
_QOS_MASK: Final = 0x06
_QOS1: Final = 0x02
_RETAIN: Final = 0x01
_U16: Final = struct.Struct("!H")
_PUBACK_PACKET: Final = struct.Struct("!BBH")
_MAX_LENGTH_BYTES: Final = 4


class OversizedPacketError(ConnectionError):
    """A packet over the size limit that is not a PUBLISH at QoS 0 or 1: the connection is dropped.

    Raised from the socket's ``recv``, where paho takes any ``OSError`` as a lost connection.
    """


class Intake:
    """Splits what a connection reads into PUBLISHes and PUBACKs (taken here) and the bytes paho must read."""

    __slots__ = ("_acked", "_deliver", "_held", "_limit", "_passing", "_skipping", "_too_large")

    def __init__(
        self,
        deliver: Callable[[str, bytes, int, int, bool], None],
        acked: Callable[[int], bool] | None = None,
        *,
        too_large: Callable[[str, int, int, int, bool], None],
        limit: int = MAX_MESSAGE,
    ) -> None:
        """``deliver(topic, payload, mid, qos, retain)`` is called for each PUBLISH taken, in order.

        ``acked(mid)`` is offered each PUBACK: ``True`` takes it (a publish of
        :mod:`ivr.bus.outbound`), ``False`` leaves it to paho (one of paho's own publishes).
        A PUBLISH with more than ``limit`` payload bytes is discarded as it arrives and reported,
        in its place among the others, to ``too_large(topic, size, mid, qos, retain)``.
        """
        self._deliver = deliver
        self._acked = acked
        self._too_large = too_large
        self._limit = limit
        self._held = b""
        self._skipping = 0  # bytes of a discarded PUBLISH still to come
        self._passing: tuple[str, int, int, int, bool] = ("", 0, 0, 0, False)  # what is said of it once passed

    @property
    def held(self) -> int:
        """Bytes of a packet cut by the end of the last read, waiting for the rest."""
        return len(self._held)

    def feed(self, data: bytes) -> bytes:  # noqa: C901, PLR0912 - one pass over every packet read: the hot path stays one function
        """Take the PUBLISHes out of ``data``; return the other complete packets, in order, for paho."""
        if self._skipping:
            data = self._skip(data)
        if self._held:
            data = self._held + data
        size = len(data)
        at = 0
        kept: list[bytes] = []
        deliver, acked, limit = self._deliver, self._acked, self._limit
        while at < size:
            first = data[at]
            # Lengths of one or two bytes (packets under 16 KiB: every event) read here, the rest in a call.
            if at + 2 < size and not data[at + 1] & 0x80:
                length, body = data[at + 1], at + 2
            elif at + 2 < size and not data[at + 2] & 0x80:
                length, body = (data[at + 1] & 0x7F) | data[at + 2] << 7, at + 3
            else:
                length, body = _remaining_length(data, at + 1, size)
            if body < 0:
                break  # the length itself is cut: wait for more
            end = body + length
            if length > limit:
                after = self._pass_over(data, first, at, body, end, size)
                if after == at:
                    break  # its topic is cut: wait for more
                if after is not None:
                    at = after
                    continue
            if end > size:
                break  # the body is cut: wait for more
            if first & 0xF0 == _PUBLISH:
                taken = first & _QOS_MASK <= _QOS1 and _take(data, first, body, end, deliver)
            else:
                taken = first == PUBACK and length == 2 and acked is not None and acked(_U16.unpack_from(data, body)[0])  # noqa: PLR2004 - a 3.1.1 PUBACK is its id
            if not taken:
                kept.append(data[at:end])
            at = end
        self._held = data[at:]
        return b"".join(kept)

    def _pass_over(self, data: bytes, first: int, at: int, body: int, end: int, size: int) -> int | None:  # noqa: PLR0913, PLR0917 - the packet's place, as feed() has it
        """A packet over the limit at ``data[at:end]``: where :meth:`feed` goes on after it.

        ``None`` if it is to be taken whole after all (a PUBLISH over the limit only by its long
        topic); ``at`` while its topic and message id are still to come. Otherwise what of it is
        here is dropped, and the rest will be as it comes (:meth:`_skip`), before it is reported.
        """
        passing = _reference(data, first, body, end, size, self._limit)
        if passing is None:
            return at
        if not passing:
            return None
        if end > size:
            self._skipping, self._passing = end - size, passing
            return size
        self._too_large(*passing)
        return end

    def _skip(self, data: bytes) -> bytes:
        """Discard what ``data`` holds of a PUBLISH over the limit; report it once it has passed; the rest."""
        skipping = self._skipping
        if len(data) < skipping:
            self._skipping = skipping - len(data)
            return b""
        self._skipping = 0
        self._too_large(*self._passing)
        return data[skipping:]


def _reference(  # noqa: PLR0913, PLR0917 - the packet's place in the data, as feed() has it
    data: bytes, first: int, body: int, end: int, size: int, limit: int
) -> tuple[str, int, int, int, bool] | tuple[()] | None:
    """A packet over ``limit`` bytes at ``data[body:end]``: what ``too_large`` is told of it.

    ``()`` for a PUBLISH whose payload is within the limit after all (its topic is long): it is
    taken whole. ``None`` while its topic and message id are still to arrive. Raises
    :class:`OversizedPacketError` for any other packet.
    """
    qos = (first & _QOS_MASK) >> 1
    if first & 0xF0 != _PUBLISH or qos > 1:
        msg = f"a packet of {end - body} bytes (type {first >> 4}, QoS {qos}), over the limit of {limit}"
        raise OversizedPacketError(msg)
    if body + 2 > size:
        return None
    (topic_length,) = _U16.unpack_from(data, body)
    start = body + 2 + topic_length + 2 * qos
    if start > size:
        return None
    if end - start <= limit:
        return ()
    mid = _U16.unpack_from(data, start - 2)[0] if qos else 0
    topic = data[body + 2 : body + 2 + topic_length].decode(errors="replace")
    return topic, end - start, mid, qos, bool(first & _RETAIN)


def _remaining_length(data: bytes, at: int, size: int) -> tuple[int, int]:
    """MQTT's variable-length ``remaining length`` at ``at``: (length, where the body starts), body -1 if cut.

    A length longer than four bytes is malformed; it is returned as ending the data here so the
    packet goes to paho, which reports the protocol error as it always has.
    """
    length = 0
    shift = 0
    for index in range(at, min(at + _MAX_LENGTH_BYTES, size)):
        byte = data[index]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, index + 1
        shift += 7
    if size - at >= _MAX_LENGTH_BYTES:
        return 0, size  # malformed: hand it over as it is
    return 0, -1


def _take(data: bytes, first: int, body: int, end: int, deliver: Callable[[str, bytes, int, int, bool], None]) -> bool:
    """Deliver the PUBLISH in ``data[body:end]``; ``False`` (not taken) if paho should judge it."""
    qos = (first & _QOS_MASK) >> 1
    if end - body < 2 + 2 * qos:
        return False
    (topic_length,) = _U16.unpack_from(data, body)
    start = body + 2 + topic_length
    if start + 2 * qos > end:
        return False
    try:
        topic = data[body + 2 : start].decode()
    except UnicodeDecodeError:
        return False
    mid = 0
    if qos:
        (mid,) = _U16.unpack_from(data, start)
        start += 2
    deliver(topic, data[start:end], mid, qos, bool(first & _RETAIN))
    return True


class PubackQueue:
    """PUBACKs of one paho client, queued to it as one packet per turn of the event loop."""

    __slots__ = ("_loop", "_mids", "_paho")

    def __init__(self, paho: Any) -> None:  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
        """Acknowledge on ``paho``'s connection."""
        self._paho = paho
        self._mids: list[int] = []
        self._loop = asyncio.get_running_loop()

    def ack(self, mid: int) -> None:
        """Send the PUBACK for ``mid`` with the others acknowledged in this turn of the loop."""
        if not self._mids:
            self._loop.call_soon(self._flush)
        self._mids.append(mid)

    def _flush(self) -> None:
        mids, self._mids = self._mids, []
        pack = _PUBACK_PACKET.pack
        data = b"".join([pack(PUBACK, 2, mid) for mid in mids])
        self._paho._packet_queue(PUBACK, data, 0, 1)  # noqa: SLF001 - as paho's own ack queues a PUBACK
