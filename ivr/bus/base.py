"""What the rest of ``ivr`` asks of a message bus, whatever carries the messages.

The publisher, the ledger and ``ivr events`` depend on :class:`Bus` only. Two things implement
it: :class:`ivr.bus.mqtt.MqttBus` over a real broker, and :class:`ivr.bus.local.LocalBus` in
memory for unit tests of logic (httpx's ``MockTransport`` is the model). The contract is MQTT's
QoS 1, stated once here so both keep it:

- ``publish`` returns once the broker has acknowledged the message (PUBACK), and raises a
  :class:`BusError` otherwise; a caller that got an error must assume nothing and publish again.
- ``publish_many`` publishes messages in order and returns once all are acknowledged; on a
  failure it raises :class:`PartlyPublishedError` saying how many, from the first, were.
- ``deliveries`` yields what the subscriptions match, at least once (``batches`` the same, in
  lists of whatever has arrived). With manual acknowledgement
  a delivery not acked before its connection drops comes again on the next connection, so a
  consumer acks after its commit and deduplicates by event ``id``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

__all__ = [
    "CLEARED",
    "DEADLETTER_TOPIC",
    "MAX_MESSAGE",
    "OFFLINE",
    "ONLINE",
    "Bus",
    "BusError",
    "BusRefusedError",
    "BusUnavailableError",
    "Delivery",
    "MqttVersionRefusedError",
    "PartlyPublishedError",
    "PublishTimeoutError",
    "TaskEndedError",
    "deadletter_topic",
    "publish_one_by_one",
    "status_root",
    "status_topic",
    "topic_matches",
    "wait_unless_ended",
]

#: Retained payloads of ``<root>/status/<instance>``: the last word on whether a source is up.
ONLINE: Final = b"online"
OFFLINE: Final = b"offline"
#: An empty retained payload deletes the retained message: the status of a source that has ended for good.
CLEARED: Final = b""
#: Where a consumer puts a message it cannot read, so one bad message never blocks the rest.
DEADLETTER_TOPIC: Final = f"{TOPIC_ROOT}/deadletter"
#: The largest message payload, in bytes, a subscriber takes and the brokers we configure accept
#: (Mosquitto's ``message_size_limit``): the largest event is a few KB. Anything larger is
#: discarded unread as it arrives and handed on by reference (:attr:`Delivery.oversize`).
MAX_MESSAGE: Final = 65536


def status_root(*, root: str = TOPIC_ROOT) -> str:
    """Where every status topic is: ``ivr/v2/status``."""
    return f"{root}/status"


def status_topic(instance: str, *, root: str = TOPIC_ROOT) -> str:
    """The retained status topic of one source: ``ivr/v2/status/<instance>``.

    A source carried by another process's connection is named under that process's instance
    (``ivr-console/world-…``), so its status sits under the process's, which its Last Will covers.
    """
    if any(not level or "+" in level or "#" in level for level in instance.split("/")):
        msg = f"an instance name is one or more topic levels, none empty and without wildcards, not {instance!r}"
        raise ValueError(msg)
    return f"{status_root(root=root)}/{instance}"


def deadletter_topic(*, root: str = TOPIC_ROOT) -> str:
    """The dead-letter topic under ``root`` (``ivr/v2/deadletter`` by default)."""
    return f"{root}/deadletter"


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: ``+`` is one level, a trailing ``#`` is any number, ``$`` topics apart."""
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return i == len(wanted) - 1
        if i >= len(levels) or (part not in ("+", levels[i])):
            return False
    return len(wanted) == len(levels)


class BusError(Exception):
    """A publish or subscribe did not happen; the message may or may not have reached the broker."""


class BusUnavailableError(BusError):
    """Not connected, or the connection dropped before the broker acknowledged."""


class MqttVersionRefusedError(BusUnavailableError):
    """The broker took the connection and closed it on an MQTT 5 CONNECT, unanswered: it speaks 3.1.1 only.

    RabbitMQ 3.10 does that; told apart from a broker that is not there, so the advice is the right one.
    """


class BusRefusedError(BusError):
    """The broker refused the connection (bad credentials, not authorised): retrying cannot help.

    ``code`` is the CONNACK return code as the broker sent it (MQTT 3.1.1: 4 bad user name or
    password, 5 not authorised; paho may report the MQTT 5 equivalents 134 and 135).
    """

    def __init__(self, code: int, reason: str) -> None:
        """Carry the broker's code and its meaning."""
        super().__init__(f"the broker refused the connection: {reason} (code {code})")
        self.code = code
        self.reason = reason


class PublishTimeoutError(BusError):
    """The broker did not acknowledge in time; ``topic`` says which publish."""

    def __init__(self, topic: str, timeout: float) -> None:
        """Carry the topic and the time waited."""
        super().__init__(f"no PUBACK for a message on {topic!r} within {timeout:g} s")
        self.topic = topic
        self.timeout = timeout


class PartlyPublishedError(BusError):
    """A batch stopped short: its first ``acked`` messages were acknowledged, the rest may not have been."""

    def __init__(self, acked: int, cause: BusError) -> None:
        """Carry how far the batch got and why it stopped."""
        super().__init__(f"{acked} acknowledged, then: {cause}")
        self.acked = acked
        self.cause = cause


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message received; :meth:`ack` tells the broker it is done with, when manual ack is on."""

    topic: str
    payload: bytes
    retain: bool = False
    #: The payload's size when it was over the bus's limit and discarded unread (``payload`` is
    #: then empty); ``None`` for a message received whole.
    oversize: int | None = None
    #: Sends the PUBACK; ``None`` when there is nothing to send (QoS 0, or acked on receipt).
    on_ack: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def ack(self) -> None:
        """Acknowledge (PUBACK): call after the message's effects are committed, never before.

        A no-op when the connection that brought the message is gone: the broker will deliver
        it again on the next one, and the consumer's deduplication absorbs the repeat.
        """
        if self.on_ack is not None:
            self.on_ack()


async def publish_one_by_one(
    publish: Callable[[str, bytes | str], Awaitable[None]], messages: Sequence[tuple[str, bytes | str]]
) -> None:
    """``publish_many`` for a bus whose publishes are cheap one at a time (the in-memory one, test wrappers)."""
    for done, (topic, payload) in enumerate(messages):
        try:
            await publish(topic, payload)
        except BusError as exc:
            raise PartlyPublishedError(done, exc) from exc


class TaskEndedError(RuntimeError):
    """The task a wait depended on ended without an error, before what was waited for happened."""


async def wait_unless_ended(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Wait for ``event``; if ``task`` ends first, raise what it died of (``None``: it just ended).

    A bus waiting to be connected and a publisher waiting to be drained both wait on their own
    background task: when that task dies, the wait must end with its error, not hang.
    """
    if event.is_set():
        return
    waiting = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait((waiting, task), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if waiting in done:  # it was set, though another waiter's work may have cleared it again since
        return
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error
    raise TaskEndedError


class Bus(Protocol):
    """A connection to the event bus, reconnecting on its own for as long as it is open."""

    @property
    def connected(self) -> bool:
        """Whether a publish now has a broker to go to."""
        ...

    async def wait_connected(self) -> None:
        """Return once connected (at once if already)."""
        ...

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1 and return once the broker acknowledged; :class:`BusError` otherwise."""
        ...

    async def publish_many(self, messages: Sequence[tuple[str, bytes | str]]) -> None:
        """Publish ``(topic, payload)`` pairs in order at QoS 1; :class:`PartlyPublishedError` on a failure."""
        ...

    def deliveries(self) -> AsyncIterator[Delivery]:
        """Messages matching this bus's subscriptions, across reconnections, until it is closed."""
        ...

    def batches(self, limit: int) -> AsyncIterator[list[Delivery]]:
        """:meth:`deliveries` in batches of what has arrived (at most ``limit``), for batch consumers."""
        ...
