"""paho's queued packets merged before a write: the same bytes in the same order, fewer entries."""

from __future__ import annotations

import collections
import socket

from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH, CallbackAPIVersion, Client

from ivr.bus.coalesce import coalesced_writes, merge_queued


def packet(command: int, data: bytes, *, qos: int = 1, pos: int = 0, mid: int = 1) -> dict:
    """An entry as paho's ``_packet_queue`` makes it."""
    return {
        "command": command,
        "mid": mid,
        "qos": qos,
        "pos": pos,
        "to_process": len(data) - pos,
        "packet": data,
        "info": None,
    }


def stream(queue) -> bytes:
    """The bytes paho would write for ``queue``, in order."""
    return b"".join(bytes(p["packet"][p["pos"] :]) for p in queue)


def test_acks_and_qos1_publishes_become_one_entry_with_the_same_bytes():
    """Three PUBACKs and two QoS 1 PUBLISHes: one entry, nothing after it for paho to do, the same stream."""
    queue = collections.deque(
        [
            packet(PUBACK, b"\x40\x02\x00\x01"),
            packet(PUBLISH | 0x02, b"\x32\x05\x00\x01t\x00\x07"),
            packet(PUBACK, b"\x40\x02\x00\x02"),
            packet(PUBLISH | 0x02, bytearray(b"\x32\x05\x00\x01u\x00\x08")),
            packet(PUBACK, b"\x40\x02\x00\x03"),
        ]
    )
    before = stream(queue)
    merge_queued(queue)
    assert len(queue) == 1
    (entry,) = queue
    assert entry["command"] == PUBACK
    assert entry["to_process"] == len(before)
    assert stream(queue) == before


def test_packets_whose_write_means_something_keep_their_own_entry_and_place():
    """A QoS 0 PUBLISH (its write completes it), a DISCONNECT and a half-written packet split the runs."""
    half = packet(PUBLISH | 0x02, b"\x32\x05\x00\x01v\x00\x09", pos=3)
    qos0 = packet(PUBLISH, b"\x30\x03\x00\x01w", qos=0)
    bye = packet(DISCONNECT, b"\xe0\x00", qos=0)
    queue = collections.deque(
        [
            half,
            packet(PUBACK, b"\x40\x02\x00\x04"),
            packet(PUBACK, b"\x40\x02\x00\x05"),
            qos0,
            packet(PUBACK, b"\x40\x02\x00\x06"),
            bye,
        ]
    )
    before = stream(queue)
    merge_queued(queue)
    assert [p["command"] for p in queue] == [PUBLISH | 0x02, PUBACK, PUBLISH, PUBACK, DISCONNECT]
    assert queue[0] is half
    assert queue[2] is qos0
    assert queue[4] is bye
    assert queue[3]["packet"] == b"\x40\x02\x00\x06"  # a run of one is left as it was
    assert stream(queue) == before


def test_a_real_paho_client_writes_a_merged_queue_in_one_send_and_a_partial_send_resumes():
    """The client's own write loop on a socket pair: everything arrives, in order, even when the kernel takes half."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)  # noqa: FBT003 - the socket API
    sent: list[int] = []

    class Counting:
        """The socket paho sees: counts its sends, and takes only part of the first."""

        def send(self, data) -> int:
            size = len(data) // 2 if not sent else len(data)
            sent.append(size)
            return ours.send(bytes(data[:size]))

        def close(self) -> None:
            ours.close()

    client = Client(CallbackAPIVersion.VERSION2)
    client._sock = Counting()
    acks = [packet(PUBACK, bytes([0x40, 0x02, 0x00, n])) for n in range(1, 101)]
    client._out_packet.extend(acks)
    coalesced_writes(client)
    expected = stream(acks)

    client.loop_write()  # the kernel takes half of the merged entry; paho sends the rest from its position
    received = theirs.recv(4096)
    assert received == expected
    assert len(sent) == 2
    assert not client._out_packet
    client._reset_sockets()
    theirs.close()
