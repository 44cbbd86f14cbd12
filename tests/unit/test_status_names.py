"""Status names (issue 16): a source's status topic is its name, nested under the connection that carries it."""

from __future__ import annotations

import pytest

from ivr.bus.base import CLEARED, ONLINE, BusUnavailableError, Delivery, status_topic
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import BrokerConfig

#: Nothing listens there: these buses are never opened, and a publish fails at once.
NOWHERE = BrokerConfig(host="127.0.0.1", port=9)


def test_a_status_name_may_nest_but_has_no_empty_level_or_wildcard():
    """ivr-console/world-… names a topic under the console's; '', 'a//b', '+' and '#' name none."""
    assert status_topic("ivr-console/world-3f2a-ledger") == "ivr/v2/status/ivr-console/world-3f2a-ledger"
    for bad in ("", "a//b", "a/", "/a", "a/+", "ivr-console/#"):
        with pytest.raises(ValueError, match="topic levels"):
            status_topic(bad)


async def test_a_connection_keeps_statuses_only_under_its_own_name():
    """The console's connection may speak for ivr-console/..., never for itself twice, a lookalike or another."""
    bus = MqttBus(config=NOWHERE, instance="ivr-console")
    for other in ("ivr-console", "ivr-console-2/world-1", "ivr-ledger"):
        with pytest.raises(ValueError, match="named under its instance"):
            await bus.keep_status(other)
    with pytest.raises(ValueError, match="named under its instance"):
        await MqttBus(config=NOWHERE).keep_status("ivr-console/world-1")


async def test_only_a_retained_status_under_its_name_that_it_does_not_keep_is_a_leftover():
    """A crashed run's world status is a leftover; a kept one, a live one, a cleared one or another's is not."""
    bus = MqttBus(config=NOWHERE, instance="ivr-console")
    with pytest.raises(BusUnavailableError):  # kept all the same: said on the next connection
        await bus.keep_status("ivr-console/world-live")

    def status(name: str, payload: bytes = ONLINE, *, retain: bool = True) -> Delivery:
        return Delivery(topic=status_topic(name), payload=payload, retain=retain)

    assert bus.leftover_status(status("ivr-console/world-dead")) == "ivr-console/world-dead"
    assert bus.leftover_status(status("ivr-console/world-dead-ledger")) == "ivr-console/world-dead-ledger"
    assert bus.leftover_status(status("ivr-console/world-live")) is None
    assert bus.leftover_status(status("ivr-console/world-dead", retain=False)) is None
    assert bus.leftover_status(status("ivr-console/world-dead", CLEARED)) is None
    assert bus.leftover_status(status("ivr-console")) is None
    assert bus.leftover_status(status("ivr-console-2/world-dead")) is None
