"""Whether a broker grants MQTT shared subscriptions, asked before `ivr ledger --share` relies on one.

Shared subscriptions (``$share/<group>/<filter>``) are an MQTT 5 feature. Our connections speak
3.1.1, where ``$share/...`` is an ordinary topic filter: a broker that has shared subscriptions
(Mosquitto) treats it as one anyway, and one that has not (NATS's and RabbitMQ's MQTT listeners)
grants it as a literal filter that no event is ever published on, so a ledger deducts nothing,
without a word. The SUBACK is the same either way. The MQTT 5 CONNACK tells them apart: a broker
without MQTT 5 refuses the protocol version (NATS), or closes the connection without a CONNACK
and answers a 3.1.1 CONNECT (RabbitMQ 3.10), and one with it says ``Shared Subscription
Available`` = 0 when it has none (absent, they are available). So the ledger connects once with
MQTT 5 under a client id of its own, clean, and reads the CONNACK (a ledger that speaks MQTT 5
itself asks the same way: its subscriptions are made before any CONNACK of its own is read). A broker that binds each
login to one client id refuses that probe, in MQTT 5: it has still shown that it speaks MQTT 5
and not said that shared subscriptions are unavailable, so the ledger goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Final

import structlog

from ivr.bus.base import BusError, BusRefusedError
from ivr.bus.connection import ClosedBeforeConnackError, Session, connect_once
from ivr.bus.url import MQTT5, MQTT311

if TYPE_CHECKING:
    from ivr.bus.mqtt import Backoff
    from ivr.bus.url import BrokerConfig

__all__ = ["SharedSubscriptionsUnavailableError", "require_shared_subscriptions"]

_UNSUPPORTED_PROTOCOL: Final = 0x84
_BAD_LOGIN: Final = frozenset({0x86, 0x8C})  # bad user name or password, bad authentication
#: Client identifier not valid, not authorised: a broker that binds the login to one client id
#: (Mosquitto's dynamic security) refuses the probe's own id, in MQTT 5 and without properties.
_ID_REFUSED: Final = frozenset({0x85, 0x87})
_CONNACK_TIMEOUT: Final = 10.0

log = structlog.get_logger("ivr.bus.shared")


class SharedSubscriptionsUnavailableError(BusError):
    """The broker grants no shared subscriptions; ``reason`` says how it told us."""

    def __init__(self, config: BrokerConfig, reason: str) -> None:
        """Name the broker and what it answered."""
        super().__init__(f"the broker at {config} grants no shared subscriptions: {reason}")
        self.reason = reason


async def require_shared_subscriptions(config: BrokerConfig, *, client_id: str, backoff: Backoff) -> None:
    """Return if the broker grants shared subscriptions; raise :class:`SharedSubscriptionsUnavailableError` if not.

    Asked as ``client_id``, which must not be a session in use (it is connected clean). A broker
    not reachable yet is asked again after ``backoff``'s delays, as the bus would reconnect;
    credentials it refuses raise :class:`~ivr.bus.base.BusRefusedError`.
    """
    attempt = 0
    while True:
        try:
            connack = await connect_once(
                dataclasses.replace(config, mqtt_version=MQTT5), Session(client_id=client_id), _CONNACK_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, ClosedBeforeConnackError) and await _answers_mqtt311(config, client_id):
                msg = "it refused MQTT 5, the protocol version they belong to: it closed the connection unanswered"
                raise SharedSubscriptionsUnavailableError(config, msg) from exc
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("broker not reachable to ask about shared subscriptions", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            continue
        code = connack.code
        if code == _UNSUPPORTED_PROTOCOL:
            msg = "it refused MQTT 5, the protocol version they belong to"
            raise SharedSubscriptionsUnavailableError(config, msg)
        if code in _BAD_LOGIN:
            raise BusRefusedError(code, "the broker refused the login")
        if code in _ID_REFUSED:
            # It spoke MQTT 5 and did not say they are unavailable, which MQTT 5 reads as available.
            log.warning("the broker speaks MQTT 5 but refused the probe's client id", client_id=client_id, code=code)
            return
        if code:
            msg = f"it refused an MQTT 5 connection (reason code {code})"
            raise SharedSubscriptionsUnavailableError(config, msg)
        if not connack.shared_subscriptions:
            msg = "its CONNACK says Shared Subscription Available = 0"
            raise SharedSubscriptionsUnavailableError(config, msg)
        return


async def _answers_mqtt311(config: BrokerConfig, client_id: str) -> bool:
    """Whether the broker answers an MQTT 3.1.1 CONNECT with a CONNACK, whatever it says in it."""
    try:
        await connect_once(
            dataclasses.replace(config, mqtt_version=MQTT311), Session(client_id=client_id), _CONNACK_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    return True
