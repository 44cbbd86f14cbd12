"""The bus uses its dependencies through their public APIs only, and leaves MQTT's wire format to paho."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

IVR = REPO / "ivr"
#: The private attributes of paho and aiomqtt the hand-written packet layer reached into (issue 16).
PRIVATE = re.compile(
    r"\._(client|sock|packet_queue|out_packet|in_packet|mid_generate|out_messages|handle_pubackcomp|do_on_publish)\b"
)
#: What writing or parsing MQTT packets by hand needs: byte packing, or paho's packet type constants.
PACKET_NAMES = {"PUBLISH", "PUBACK", "SUBSCRIBE", "SUBACK", "CONNECT", "CONNACK", "PINGREQ", "PINGRESP"}


def test_no_module_of_ivr_reaches_into_a_dependency():
    """No ``noqa: SLF001`` (a private attribute of another object) and none of paho's or aiomqtt's private names."""
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(IVR.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "SLF001" in line or PRIVATE.search(line)
    ]
    assert found == []


def test_no_module_of_the_bus_packs_mqtt_packets():
    """``ivr/bus`` imports no ``struct`` and no packet type of paho's: the wire format is paho's business."""
    found = []
    for path in sorted((IVR / "bus").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(alias.name == "struct" for alias in node.names):
                found.append(f"{path.name}: import struct")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("paho"):
                found += [f"{path.name}: {alias.name}" for alias in node.names if alias.name in PACKET_NAMES]
    assert found == []
