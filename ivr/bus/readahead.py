"""A TCP socket that reads ahead, for paho: one ``recv`` for many MQTT packets instead of 2-3 each.

paho reads a packet in pieces: its type byte, each byte of its length, then its body, each piece
a ``recv`` system call. Profiled in the ledger (docs/performance.md), those calls were 14 % of
its event loop: two packets come in per deduction (the ticket event and the PUBACK of the
announcement). This socket hands paho the same pieces from one ``recv`` of up to 64 KiB.

What it reads ahead must not wait for the socket to become readable again, since it may never
do so: it says how much it holds through ``pending()``, the method of ``ssl.SSLSocket`` for the
same situation, and aiomqtt's read callback already calls paho's ``loop_read`` again for as long
as ``pending()`` is above zero.

Given an :class:`~ivr.bus.intake.Intake`, each large read goes through it first: the PUBLISHes
are taken there and paho reads only the other packets.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Final, Self

if TYPE_CHECKING:
    from ivr.bus.intake import Intake

__all__ = ["ReadAheadSocket", "read_ahead"]

#: The most read at once: ~150 ticket events of ~450 bytes.
READ_AHEAD: Final = 65536


class ReadAheadSocket(socket.socket):
    """A connected socket whose ``recv`` serves small reads from one large read."""

    __slots__ = ("_ahead", "_at", "_intake")

    def __init__(self, fileno: int, intake: Intake | None = None) -> None:
        """Take over the open file descriptor ``fileno`` (see :meth:`adopt`)."""
        super().__init__(fileno=fileno)
        self._ahead = b""
        self._at = 0
        self._intake = intake

    @classmethod
    def adopt(cls, sock: socket.socket, intake: Intake | None = None) -> Self:
        """The same connection, read ahead (through ``intake``); ``sock`` is detached and must not be used again."""
        blocking = sock.getblocking()
        adopted = cls(sock.detach(), intake)
        adopted.setblocking(blocking)
        return adopted

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes: what was read ahead first, else one large read from the socket.

        Raises ``BlockingIOError`` as a non-blocking socket does when nothing has arrived (or all
        that arrived went to the intake), and returns ``b""`` once the peer has closed. paho passes
        no ``flags``; none are taken.
        """
        if flags:
            msg = "a read-ahead socket takes no recv flags"
            raise ValueError(msg)
        if self._at >= len(self._ahead):
            data = super().recv(max(bufsize, READ_AHEAD))
            if data and self._intake is not None:
                data = self._intake.feed(data)
                if not data:
                    raise BlockingIOError  # the socket stays readable if more is waiting: paho comes back
            self._ahead = data
            self._at = 0
        start = self._at
        self._at = min(start + bufsize, len(self._ahead))
        return self._ahead[start : self._at]

    def pending(self) -> int:
        """Bytes read ahead and not yet handed out."""
        return len(self._ahead) - self._at


def read_ahead(paho: Any, intake: Intake | None = None) -> None:  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
    """Make this paho client read through a :class:`ReadAheadSocket` (set before it connects).

    Each new connection's socket is swapped in paho's ``on_socket_open``, before aiomqtt's own
    handler registers it with the event loop.
    """
    aiomqtt_on_socket_open = paho.on_socket_open

    def on_socket_open(client: Any, userdata: Any, sock: socket.socket) -> None:  # noqa: ANN401 - paho's callback
        client._sock = reading = ReadAheadSocket.adopt(sock, intake)  # noqa: SLF001 - the socket paho reads from
        aiomqtt_on_socket_open(client, userdata, reading)

    paho.on_socket_open = on_socket_open
