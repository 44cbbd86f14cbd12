"""A window of PUBLISHes written by the bus itself: the packets paho would write, with ids from paho's own counter."""

from __future__ import annotations

import itertools

import pytest
from paho.mqtt import _packet
from paho.mqtt.client import MQTTv311

from ivr.bus.intake import Intake
from ivr.bus.outbound import encode_publishes


class CountingPaho:
    """paho's message-id counter, starting where a client that already sent two packets would be."""

    def __init__(self) -> None:
        """Ids 3, 4, ... next."""
        self._ids = itertools.count(3)

    def _mid_generate(self) -> int:
        return next(self._ids)


def split(stream: bytes) -> list[bytes]:
    """The messages in ``stream``, as the intake decodes them."""
    taken: list[bytes] = []
    intake = Intake(
        lambda topic, payload, mid, qos, retain: taken.append((topic, payload, mid, qos, retain)),
        too_large=lambda *message: pytest.fail(f"too large: {message}"),
    )
    assert intake.feed(stream) == b""
    return taken


def test_each_message_becomes_the_qos1_publish_paho_decodes_with_the_next_id():
    """Topic, payload (str or bytes, 20,000 bytes for a three-byte length), QoS 1, ids 3, 4, 5 from paho's counter."""
    messages = [("ivr/v1/call/started", '{"n":1}'), ("ivr/v1/ledger/x", b"y" * 20_000), ("é/ü", b"")]
    mids, stream = encode_publishes(CountingPaho(), messages)
    assert mids == [3, 4, 5]
    assert split(stream) == [
        ("ivr/v1/call/started", b'{"n":1}', 3, 1, False),
        ("ivr/v1/ledger/x", b"y" * 20_000, 4, 1, False),
        ("é/ü", b"", 5, 1, False),
    ]
    first = stream[: 2 + 2 + len("ivr/v1/call/started") + 2 + len('{"n":1}')]
    decoded = _packet.decode_publish(first[0], first[2:], MQTTv311)
    assert (decoded.topic, decoded.payload, decoded.mid, decoded.qos) == (b"ivr/v1/call/started", b'{"n":1}', 3, 1)


@pytest.mark.parametrize("topic", ["", "ivr/+/x", "ivr/#"])
def test_a_topic_paho_would_refuse_is_refused(topic):
    """Empty or wildcard topics are not published on: a ValueError, as paho raises."""
    with pytest.raises(ValueError, match="not a topic to publish on"):
        encode_publishes(CountingPaho(), [(topic, b"x")])


def test_a_puback_of_our_own_publish_is_taken_and_any_other_left_to_paho():
    """The intake offers each PUBACK: ids the bus awaits are taken, the rest go to paho whole."""
    ours = {7}
    intake = Intake(
        lambda *_: None, lambda mid: mid in ours, too_large=lambda *message: pytest.fail(f"too large: {message}")
    )
    assert intake.feed(bytes([0x40, 2, 0, 7, 0x40, 2, 0, 8])) == bytes([0x40, 2, 0, 8])
