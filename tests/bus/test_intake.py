"""PUBLISHes taken off the wire as paho would decode them; the other packets left to paho whole and in order."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.client import PUBACK, MQTTv311

from ivr.bus.intake import Intake, OversizedPacketError, PubackQueue


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of ``n``."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, retain: bool = False, dup: bool = False) -> bytes:  # noqa: PLR0913 - the packet's fields
    """An MQTT 3.1.1 PUBLISH packet."""
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([first]) + remaining_length(len(body)) + body


def taker(limit: int | None = None) -> tuple[Intake, list[tuple]]:
    """An intake and the list its deliveries go to; one over ``limit`` goes there as ``("too large", ...)``."""
    taken: list[tuple] = []
    sizes = {} if limit is None else {"limit": limit}
    return Intake(
        lambda *message: taken.append(message), too_large=lambda *m: taken.append(("too large", *m)), **sizes
    ), taken


def test_a_publish_is_decoded_as_paho_decodes_it():
    """Topic, payload, message id, QoS and retain agree with paho's own decoder."""
    packet = publish(b"ivr/v1/ticket/created", b'{"id":"e-1"}', qos=1, mid=0xBEEF, retain=True, dup=True)
    intake, taken = taker()
    assert intake.feed(packet) == b""
    decoded = _packet.decode_publish(packet[0], packet[2:], MQTTv311)
    assert taken == [(decoded.topic.decode(), decoded.payload, decoded.mid, decoded.qos, decoded.retain)]


PACKETS = st.one_of(
    st.builds(
        lambda topic, payload, qos, mid, retain: ("publish", publish(topic, payload, qos=qos, mid=mid, retain=retain)),
        st.text(min_size=1, max_size=30).map(str.encode),
        st.binary(max_size=300) | st.just(b"x" * 20_000),  # one-, two- and three-byte remaining lengths
        st.sampled_from([0, 1]),
        st.integers(1, 65535),
        st.booleans(),
    ),
    st.sampled_from(
        [
            ("paho", bytes([0x40, 2, 0x12, 0x34])),  # PUBACK
            ("paho", bytes([0x90, 3, 0, 1, 1])),  # SUBACK
            ("paho", bytes([0xD0, 0])),  # PINGRESP
            ("paho", bytes([0x20, 2, 0, 0])),  # CONNACK
            ("paho", publish(b"t/2", b"exactly once", qos=2, mid=7)),  # QoS 2 is paho's to handle
            ("paho", publish(b"\xff\xfe", b"not utf-8", qos=1, mid=8)),  # paho reports the bad topic
        ]
    ),
)


@given(st.lists(PACKETS, max_size=30), st.data())
def test_any_stream_cut_anywhere_gives_the_same_messages_and_leaves_paho_the_rest_in_order(packets, data):
    """However reads cut the stream, each PUBLISH is delivered once, in order; paho gets every other packet whole."""
    stream = b"".join(packet for _, packet in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    intake, taken = taker()
    for_paho = b""
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        for_paho += intake.feed(stream[start:end])
    whole, expected = taker()
    for kind, packet in packets:
        if kind == "publish":
            whole.feed(packet)
    assert taken == expected
    assert for_paho == b"".join(packet for kind, packet in packets if kind == "paho")
    assert intake.held == 0


def test_a_cut_packet_is_held_until_its_rest_arrives():
    """Half a PUBLISH delivers nothing and gives paho nothing; the other half completes it."""
    packet = publish(b"a/b", b"payload", qos=1, mid=3)
    intake, taken = taker()
    assert intake.feed(packet[:5]) == b""
    assert (taken, intake.held) == ([], 5)
    assert intake.feed(packet[5:]) == b""
    assert taken == [("a/b", b"payload", 3, 1, False)]


def test_a_remaining_length_longer_than_four_bytes_goes_to_paho():
    """Malformed framing is paho's to report: the bytes are passed on, not guessed at."""
    malformed = bytes([0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    intake, taken = taker()
    assert intake.feed(malformed) == malformed
    assert taken == []


class RecordingPaho:
    """paho's ``_packet_queue``, recording what it is given."""

    def __init__(self) -> None:
        """No packet queued yet."""
        self.queued: list[tuple[int, bytes, int, int]] = []

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
        self.queued.append((command, packet, mid, qos))


async def test_pubacks_of_one_loop_turn_are_queued_as_one_packet_entry():
    """Three acks in one turn: one entry holding three PUBACKs, in order; a later ack gets an entry of its own."""
    paho = RecordingPaho()
    acks = PubackQueue(paho)
    for mid in (1, 0x0102, 65535):
        acks.ack(mid)
    assert paho.queued == []  # nothing until the turn ends
    await asyncio.sleep(0)
    acks.ack(9)
    await asyncio.sleep(0)
    assert paho.queued == [
        (PUBACK, b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff", 0, 1),
        (PUBACK, b"\x40\x02\x00\x09", 0, 1),
    ]


LIMIT = 500


def test_a_publish_over_the_limit_is_told_by_reference_and_never_held():
    """1 MB over a 500-byte limit, read 64 KiB at a time between two small ones: told by topic and size, in place."""
    big = publish(b"ivr/v1/ticket/created", b"x" * 1_000_000, qos=1, mid=9, retain=True)
    stream = publish(b"a", b"before", qos=1, mid=1) + big + publish(b"b", b"after", qos=0)
    intake, taken = taker(LIMIT)
    held = []
    for at in range(0, len(stream), 65536):
        assert intake.feed(stream[at : at + 65536]) == b""
        held.append(intake.held)
    assert taken == [
        ("a", b"before", 1, 1, False),
        ("too large", "ivr/v1/ticket/created", 1_000_000, 9, 1, True),
        ("b", b"after", 0, 0, False),
    ]
    assert max(held) < LIMIT


def test_a_long_topic_does_not_make_a_message_too_large():
    """The limit is on the payload: a packet longer than it only by its topic is delivered whole."""
    topic = b"t/" + b"x" * LIMIT
    intake, taken = taker(LIMIT)
    assert intake.feed(publish(topic, b"y" * LIMIT, qos=1, mid=2)) == b""
    assert taken == [(topic.decode(), b"y" * LIMIT, 2, 1, False)]


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(publish(b"t", b"z" * (LIMIT + 1), qos=2, mid=3), id="qos2-publish"),
        pytest.param(bytes([0x90]) + remaining_length(LIMIT + 10) + b"\0" * (LIMIT + 10), id="suback"),
    ],
)
def test_any_other_packet_over_the_limit_drops_the_connection(packet):
    """No broker sends these: an error paho takes for a lost connection, as soon as the length is read."""
    intake, _ = taker(LIMIT)
    with pytest.raises(OversizedPacketError, match="over the limit of 500"):
        intake.feed(packet[:8])


SIZED = st.one_of(
    st.builds(
        lambda payload, mid: (("msg", payload, mid), publish(b"small", payload, qos=1, mid=mid)),
        st.binary(max_size=LIMIT),
        st.integers(1, 65535),
    ),
    st.builds(
        lambda size, mid: (("too large", size, mid), publish(b"big/" + b"t" * 300, b"x" * size, qos=1, mid=mid)),
        st.integers(LIMIT + 1, 5 * LIMIT),
        st.integers(1, 65535),
    ),
)


@given(st.lists(SIZED, max_size=20), st.data())
def test_messages_over_the_limit_keep_their_place_however_reads_cut_the_stream(packets, data):
    """Small and too-large messages cut anywhere: each told once, in order; nothing held beyond a limit and a header."""
    stream = b"".join(packet for _, packet in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    intake, taken = taker(LIMIT)
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        assert intake.feed(stream[start:end]) == b""
        assert intake.held <= 5 + 2 + 304 + 2 + LIMIT
    told = [("too large", m[2], m[3]) if m[0] == "too large" else ("msg", m[1], m[2]) for m in taken]
    assert told == [expected for expected, _ in packets]
