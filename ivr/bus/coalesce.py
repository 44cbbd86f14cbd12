"""Packets queued together written with one ``send``, where paho makes a system call per packet.

paho queues each outgoing packet (a PUBLISH, a PUBACK) on its ``_out_packet`` deque, and its
``loop_write`` pops them one at a time, each with its own ``send``: with ``TCP_NODELAY`` each is
also a segment of its own, which Mosquitto reads and answers on its own. The ledger acks a batch
of 500 deliveries and announces as many events at once, the relay publishes windows of 100: in
the ledger's loop those sends were 12 % of the samples (docs/performance.md, round 4).

So before paho writes, each run of neighbouring packets that need nothing done after they are
written — a PUBLISH at QoS 1 or 2 (it completes on its PUBACK, not on the write) and the
acknowledgements — becomes one entry holding their bytes back to back. paho then writes that
entry as it writes any packet, a partial ``send`` included (it keeps the entry's position), so
nothing about the stream changes but how it is cut. A PUBLISH at QoS 0, whose write is its
completion, a DISCONNECT, which closes the socket once written, and a packet already partly
written stay entries of their own, in their place.

Since round 5 a window of publishes (:mod:`ivr.bus.outbound`) and a loop turn's PUBACKs
(:mod:`ivr.bus.intake`) are queued as one entry each already; what is still merged here are those
entries and paho's own packets queued beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from paho.mqtt.client import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL

if TYPE_CHECKING:
    from collections import deque

__all__ = ["coalesced_writes", "merge_queued"]

_ACKS: Final = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP})


def coalesced_writes(paho: Any) -> None:  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
    """Make this paho client merge its queued packets before each write (set before it connects)."""
    own = paho.loop_write

    def loop_write() -> Any:  # noqa: ANN401 - paho's return code, as its own method returns it
        merge_queued(paho._out_packet)  # noqa: SLF001 - the queue paho is about to write
        return own()

    paho.loop_write = loop_write


def merge_queued(queue: deque[dict[str, Any]]) -> None:
    """Replace each run of neighbouring mergeable packets in paho's out-queue by one entry, in place."""
    if len(queue) < 2:  # noqa: PLR2004 - nothing to merge
        return
    merged: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for packet in queue:
        if _mergeable(packet):
            run.append(packet)
            continue
        _close(run, merged)
        merged.append(packet)
    _close(run, merged)
    if len(merged) < len(queue):
        queue.clear()
        queue.extend(merged)


def _mergeable(packet: dict[str, Any]) -> bool:
    if packet["pos"] != 0:
        return False
    command = packet["command"] & 0xF0
    return (command == PUBLISH and packet["qos"] > 0) or command in _ACKS


def _close(run: list[dict[str, Any]], merged: list[dict[str, Any]]) -> None:
    """Append ``run`` to ``merged`` as one entry (or as it is, when it is one packet); empty it."""
    if len(run) == 1:
        merged.append(run[0])
    elif run:
        data = b"".join(p["packet"] for p in run)
        # PUBACK as the command: paho does nothing after writing it, which is what the run needs.
        merged.append(
            {"command": PUBACK, "mid": 0, "qos": 1, "pos": 0, "to_process": len(data), "packet": data, "info": None}
        )
    run.clear()
