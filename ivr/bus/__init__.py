"""The event bus: MQTT between the IVR, the ledger and integrators, behind one small protocol.

``base`` states what the rest of ``ivr`` may ask of a bus; ``mqtt`` does it over a real broker
and ``local`` in memory; ``publisher`` drains the outbox onto it; ``schemas`` holds the event
contract; ``url`` and ``broker`` say where the broker is, or start a private one.
"""

from ivr.bus.base import (
    DEADLETTER_TOPIC,
    OFFLINE,
    ONLINE,
    Bus,
    BusError,
    BusRefusedError,
    BusUnavailableError,
    Delivery,
    PublishTimeoutError,
    deadletter_topic,
    status_topic,
    topic_matches,
)
from ivr.bus.local import LocalBroker, LocalBus
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.publisher import OutboxPublisher
from ivr.bus.url import BrokerConfig, BrokerUrlError, broker_from_env, parse_broker_url

__all__ = [
    "DEADLETTER_TOPIC",
    "OFFLINE",
    "ONLINE",
    "Backoff",
    "BrokerConfig",
    "BrokerUrlError",
    "Bus",
    "BusError",
    "BusRefusedError",
    "BusUnavailableError",
    "Delivery",
    "LocalBroker",
    "LocalBus",
    "MqttBus",
    "OutboxPublisher",
    "PublishTimeoutError",
    "broker_from_env",
    "deadletter_topic",
    "parse_broker_url",
    "status_topic",
    "topic_matches",
]
