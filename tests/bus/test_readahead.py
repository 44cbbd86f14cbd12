"""The read-ahead socket paho reads from: the same bytes, from one system call for many pieces."""

from __future__ import annotations

import select
import socket

import pytest

from ivr.bus.readahead import ReadAheadSocket


@pytest.fixture
def pair():
    """A connected TCP pair on loopback; the reading end read-ahead and non-blocking, as paho has it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        writer = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    accepted.setblocking(False)  # noqa: FBT003 - the socket API
    reader = ReadAheadSocket.adopt(accepted)
    yield writer, reader
    writer.close()
    reader.close()


def wait_readable(sock: socket.socket) -> None:
    """Block (at most 5 s) until the socket has something to read."""
    select.select([sock], [], [], 5)


def test_small_reads_are_served_from_one_read_in_order(pair):
    """Three packets' worth read in paho's pieces: the bytes come back exactly, and pending() counts down."""
    writer, reader = pair
    data = b"".join(bytes([0x30, 5]) + b"hello" for _ in range(3))
    writer.sendall(data)
    wait_readable(reader)
    pieces = [reader.recv(1)]
    assert reader.pending() == len(data) - 1  # one system call took everything
    while reader.pending():
        pieces.append(reader.recv(1))
        pieces.append(reader.recv(1))
        pieces.append(reader.recv(5))
    assert b"".join(pieces) == data


def test_nothing_waiting_raises_blocking_io_error(pair):
    """Non-blocking as before: paho takes BlockingIOError for 'nothing yet'."""
    _, reader = pair
    with pytest.raises(BlockingIOError):
        reader.recv(1)


def test_a_closed_peer_reads_as_empty(pair):
    """``b""`` still means the peer closed, once what was read ahead is used up."""
    writer, reader = pair
    writer.sendall(b"ab")
    writer.close()
    wait_readable(reader)
    assert reader.recv(1) == b"a"
    assert reader.recv(1) == b"b"
    wait_readable(reader)
    assert reader.recv(1) == b""


def test_flags_are_refused(pair):
    """Paho passes none; a peek would skip what was read ahead, so none is taken."""
    _, reader = pair
    with pytest.raises(ValueError, match="no recv flags"):
        reader.recv(1, socket.MSG_PEEK)
