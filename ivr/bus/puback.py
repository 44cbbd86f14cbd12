"""PUBACKs read without paho's two objects per packet.

paho 2.2 decodes every PUBACK into a new ``ReasonCode`` and a new ``Properties``, MQTT 3.1.1 or
not, though a 3.1.1 PUBACK carries nothing but a message id. Profiled, that was 22 % of
`ivr relay`'s CPU and 11 % of the ledger's event loop (docs/performance.md, round 3): each of
their messages is acknowledged by one PUBACK. Here a well-formed 3.1.1 PUBACK is read as the two
bytes it is, and paho's own bookkeeping (``_do_on_publish``: the callback, the message's info,
the in-flight count) runs as before, given one shared success code and one shared empty set of
properties — which no callback of ours or aiomqtt's reads. Anything else (a PUBCOMP, a PUBACK of
another length) goes to paho's own handler.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["lean_pubacks"]

_MID: Final = struct.Struct("!H")
_SUCCESS: Final = ReasonCode(PacketTypes.PUBACK)
_NO_PROPERTIES: Final = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]  # paho leaves it untyped


def lean_pubacks(paho: Any) -> None:  # noqa: ANN401 - paho's client, typed loosely by aiomqtt
    """Make this paho client read 3.1.1 PUBACKs as two bytes (set before it connects)."""
    own = paho._handle_pubackcomp  # noqa: SLF001 - the handler this replaces for the common case

    def handle_pubackcomp(cmd: str) -> MQTTErrorCode:
        packet = paho._in_packet["packet"]  # noqa: SLF001 - the packet being handled
        if cmd != "PUBACK" or len(packet) != _MID.size:
            return own(cmd)  # type: ignore[no-any-return]
        (mid,) = _MID.unpack(packet)
        with paho._out_message_mutex:  # noqa: SLF001 - as paho's handler does
            if mid in paho._out_messages:  # noqa: SLF001 - a PUBACK for a message still awaited
                return paho._do_on_publish(mid, _SUCCESS, _NO_PROPERTIES)  # type: ignore[no-any-return]  # noqa: SLF001
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._handle_pubackcomp = handle_pubackcomp  # noqa: SLF001 - see the module's docstring
