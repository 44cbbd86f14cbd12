"""A window of QoS 1 PUBLISHes encoded together and queued to paho as one packet entry.

paho's ``publish`` does, per message: a topic check, an ``MQTTMessage``, an ``MQTTMessageInfo``
holding a ``threading.Condition``, an entry in its table of messages awaiting a PUBACK, a debug-log
call, the packet built field by field and queued on its own; then, on the PUBACK, a callback and
the info's condition notified. For the ledger announcing its events that was a third of its loop,
and the relays spend their whole life on it (docs/performance.md, round 5).

:func:`encode_publishes` writes a window of MQTT 3.1.1 PUBLISH packets back to back, each with a
message id taken from paho's own counter (so ids never clash with the packets paho still sends
itself: SUBSCRIBE, the status, single publishes). The bus queues them as one entry, and the
:class:`~ivr.bus.intake.Intake` hands their PUBACKs straight back to it; paho never holds them,
which is what a fresh client per connection needs anyway: nothing of a dropped connection is
resent by paho, the outbox resends it.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["encode_publishes"]

_PUBLISH_QOS1: Final = 0x32
_U16: Final = struct.Struct("!H")
_MAX_TOPIC: Final = 65535
#: MQTT's largest remaining length (four length bytes).
_MAX_REMAINING: Final = 268_435_455


def encode_publishes(paho: Any, messages: Sequence[tuple[str, bytes | str]]) -> tuple[list[int], bytes]:  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
    """Message ids from ``paho``'s counter and the PUBLISH packets (QoS 1, not retained) of ``messages``.

    Raises ``ValueError`` for a topic or payload paho would refuse (empty, a wildcard, too long).
    """
    mids: list[int] = []
    packets: list[bytes] = []
    for topic, payload in messages:
        name = topic.encode()
        if not name or len(name) > _MAX_TOPIC or "+" in topic or "#" in topic:
            msg = f"not a topic to publish on: {topic!r}"
            raise ValueError(msg)
        body = payload.encode() if isinstance(payload, str) else payload
        mid = paho._mid_generate()  # noqa: SLF001 - paho's own counter, so ids never clash with its packets
        remaining = 4 + len(name) + len(body)
        if remaining > _MAX_REMAINING:
            msg = f"a payload of {len(body)} bytes is more than MQTT can carry"
            raise ValueError(msg)
        packets += (bytes([_PUBLISH_QOS1]), _remaining_length(remaining), _U16.pack(len(name)), name, _U16.pack(mid))
        packets.append(body)
        mids.append(mid)
    return mids, b"".join(packets)


def _remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of ``n``: seven bits a byte, the high bit saying more follow."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
