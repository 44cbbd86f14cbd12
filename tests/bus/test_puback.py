"""PUBACKs read as two bytes: paho's bookkeeping still runs, and what is not a plain PUBACK goes to paho."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from paho.mqtt.enums import MQTTErrorCode

from ivr.bus.puback import lean_pubacks


class FakePaho(SimpleNamespace):
    """The few attributes of paho's client the handler touches, recording what it is asked."""

    def __init__(self, packet: bytes, awaited: set[int]) -> None:
        """A client in the middle of handling ``packet``, awaiting PUBACKs for ``awaited``."""
        super().__init__(
            _in_packet={"packet": packet},
            _out_message_mutex=threading.Lock(),
            _out_messages=dict.fromkeys(awaited),
            published=[],
            delegated=[],
        )
        self._handle_pubackcomp = self.delegated.append

    def _do_on_publish(self, mid: int, reason_code: object, properties: object) -> MQTTErrorCode:
        self.published.append((mid, int(reason_code.value), list(properties.json())))  # type: ignore[attr-defined]
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def test_a_puback_for_an_awaited_message_completes_it_with_success():
    """Message id 0x0102 from the two bytes, reason 0 (success), no properties."""
    paho = FakePaho(b"\x01\x02", awaited={258})
    lean_pubacks(paho)
    assert paho._handle_pubackcomp("PUBACK") == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert paho.published == [(258, 0, [])]
    assert paho.delegated == []


def test_a_puback_for_a_message_no_longer_awaited_is_ignored():
    """A repeated PUBACK finds no message: nothing is published twice."""
    paho = FakePaho(b"\x00\x07", awaited={8})
    lean_pubacks(paho)
    paho._handle_pubackcomp("PUBACK")
    assert paho.published == []


def test_anything_else_goes_to_paho():
    """A PUBCOMP, or a PUBACK that is not two bytes (MQTT 5's reason and properties), is paho's to handle."""
    for cmd, packet in (("PUBCOMP", b"\x00\x01"), ("PUBACK", b"\x00\x01\x10\x00")):
        paho = FakePaho(packet, awaited={1})
        lean_pubacks(paho)
        paho._handle_pubackcomp(cmd)
        assert paho.delegated == [cmd]
        assert paho.published == []
