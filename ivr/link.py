"""What carries the IVR's outbox to the ledger, and the ledger's answers back to the IVR.

Two links, one contract (:class:`Link`): :class:`InProcessLink` hands outbox rows straight to the
ledger service (unit tests of the whole flow, no broker), and :class:`MqttLink` runs the real
path — the outbox publisher, the ledger consumer on its own MQTT connection with manual acks, and
the IVR following the ledger's events — over a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

import orjson
import structlog

from ivr.bus.base import Bus
from ivr.bus.mqtt import forget_session
from ivr.bus.publisher import OutboxPublisher
from ivr.directory.relayed import relayed_up_to
from ivr.events import TOPIC_ROOT, CloudEvent, is_ticket_topic
from ivr.ledger.consumer import LedgerConsumer

if TYPE_CHECKING:
    from pathlib import Path

    from ivr.bus.url import BrokerConfig
    from ivr.directory.storage import DirectoryStorage
    from ivr.ledger.service import LedgerService

__all__ = ["SETTLE_TIMEOUT", "InProcessLink", "Link", "LinkBus", "MqttLink"]

#: How long :meth:`Link.settle` waits for the ledger before it says so.
SETTLE_TIMEOUT: Final = 30.0
#: How often :meth:`MqttLink.settle` looks at an outbox that another process (`ivr relay`) drains.
_RELAY_POLL: Final = 0.01
#: Ledger events the follower takes in one write at most.
_FOLLOW_BATCH: Final = 1000

log = structlog.get_logger("ivr.link")


class Link(Protocol):
    """Carries events between the IVR and the ledger."""

    def notify(self) -> None:
        """New rows are in the outbox (the engine's ``on_events``)."""
        ...

    async def settle(self) -> None:
        """Return once every event emitted so far has reached the ledger and its answer come back."""
        ...

    async def close(self) -> None:
        """Stop carrying."""
        ...


class LinkBus(Bus, Protocol):
    """A bus as a link holds it: an :class:`~ivr.bus.mqtt.MqttBus` of its own, or a channel of a shared connection."""

    @property
    def client_id(self) -> str | None:
        """The client id of the bus's own persistent session, which the link forgets when it closes."""
        ...

    def open(self) -> None:
        """Start connecting."""
        ...

    async def aclose(self) -> None:
        """Stop: an own session's unacked messages come again on its next connection; a channel acks its own."""
        ...


class InProcessLink:
    """The ledger called directly, with no broker: for unit tests of the whole flow."""

    def __init__(self, *, directory: DirectoryStorage, service: LedgerService) -> None:
        """Carry between ``directory``'s outbox and ``service``."""
        self._directory = directory
        self._service = service

    def notify(self) -> None:
        """Nothing runs between settles."""

    async def settle(self) -> None:
        """Drain the outbox into the ledger, then take its balances back."""
        while rows := await self._directory.unsent(500):
            await self._service.handle(p.encode() for _, topic, p in rows if is_ticket_topic(topic))
            now = datetime.now(UTC).isoformat()
            answers = await self._service.store.unsent()
            await self._directory.take_ledger_events(CloudEvent.from_dict(json.loads(p)) for _, _, p in answers)
            await self._service.store.mark_sent((rowid for rowid, _, _ in answers), now)
            await self._directory.mark_sent((seq for seq, _, _ in rows), now)

    async def close(self) -> None:
        """Nothing to stop."""


class MqttLink:
    """The real path over a broker: publisher, ledger consumer, and the IVR following the ledger.

    The ledger runs here as a task on its own MQTT connection, so a replay needs one process; in
    production it is `ivr ledger`, its own process, and this link is built with ``service=None``.
    Each bus keeps the retained status of the source it carries (the IVR's, its own ledger's):
    ``online`` from :meth:`start`, cleared at :meth:`close`, since a replayed scenario's or a console
    world's source is named for that run and never comes back. Both buses come built from the composition
    root (:func:`ivr.bootstrap.ivr_bus`, :func:`ivr.bootstrap.ledger_bus`, or two channels of the
    console's one connection, :mod:`ivr.multiplex`). Built with
    ``relayed_by`` (the progress file of an `ivr relay`), the link leaves the outbox to that
    process (``ivr load`` does, to give publishing a core of its own).
    """

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        directory: DirectoryStorage,
        config: BrokerConfig,
        source: str,
        bus: LinkBus,
        ledger: tuple[LinkBus, LedgerService] | None,
        root: str = TOPIC_ROOT,
        relayed_by: Path | None = None,
    ) -> None:
        """Connect ``directory`` (whose events carry ``source``) through ``bus`` to the broker at ``config``.

        ``ledger`` is this link's own ledger with its bus, or ``None`` when `ivr ledger` answers.
        """
        self._directory = directory
        self._source = source
        self._config = config
        self._ivr_bus = bus
        self._relayed_by = relayed_by
        self._publisher = (
            OutboxPublisher(directory=directory, bus=self._ivr_bus, topic_prefix=root) if relayed_by is None else None
        )
        self._ledger_bus: LinkBus | None = None
        self._consumer: LedgerConsumer | None = None
        service: LedgerService | None = None
        if ledger is not None:
            self._ledger_bus, service = ledger
            self._consumer = LedgerConsumer(bus=self._ledger_bus, service=service, root=root)
        # With its own ledger, a replay takes answers from that ledger only: another ledger on
        # the same broker (a running `ivr ledger`) answers from a different file.
        self._ledger_source = service.source if service is not None else None
        self._answered: set[str] = set()
        self._answer = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect both buses and start the publisher, the consumer and the follower."""
        self._ivr_bus.open()
        if self._ledger_bus is not None and self._consumer is not None:
            self._ledger_bus.open()
            await self._ledger_bus.wait_connected()
            self._tasks.append(asyncio.create_task(self._consumer.run(), name="ledger-consumer"))
        await self._ivr_bus.wait_connected()
        if self._publisher is not None:
            self._publisher.start()
        self._tasks.append(asyncio.create_task(self._follow(), name="ledger-follower"))

    def notify(self) -> None:
        """Wake the publisher (`ivr relay` polls instead)."""
        if self._publisher is not None:
            self._publisher.notify()

    async def _follow(self) -> None:
        """Take the ledger's balances; remember which ticket events it has answered.

        What has arrived is taken together, its balances in one write and then its acks, so answers
        arriving while calls keep the loop busy cost one commit, not one each.
        """
        async for batch in self._ivr_bus.batches(_FOLLOW_BATCH):
            answers: list[CloudEvent] = []
            for delivery in batch:
                try:
                    event = CloudEvent.from_dict(orjson.loads(delivery.payload))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("unreadable ledger event ignored", topic=delivery.topic, error=str(exc))
                    continue
                ours = self._ledger_source is None or event.source == self._ledger_source
                if ours and event.data.get("trigger_source") == self._source:
                    answers.append(event)
            await self._directory.take_ledger_events(answers)
            if answers:
                self._answered.update(str(event.data.get("trigger_event_id")) for event in answers)
                self._answer.set()
            for delivery in batch:
                delivery.ack()

    async def settle(self) -> None:
        """Wait for the outbox to drain and the ledger to answer every deductible ticket."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            if self._publisher is not None:
                await self._publisher.drained()
            elif self._relayed_by is not None:
                end = await self._directory.outbox_end()
                while await relayed_up_to(self._relayed_by) < end:  # noqa: ASYNC110 - another process's file
                    await asyncio.sleep(_RELAY_POLL)
            wanted = {
                event_id for source, event_id, _ in await self._directory.deductible_tickets() if source == self._source
            }
            while not wanted <= self._answered:
                self._answer.clear()
                await self._answer.wait()

    async def close(self) -> None:
        """Stop the tasks, close both connections, and discard their sessions on the broker.

        A link lives as long as its system (a replayed scenario); leaving its persistent sessions
        behind would have the broker queue messages for clients that never come back.
        """
        if self._publisher is not None:
            await self._publisher.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        buses = [self._ivr_bus] if self._ledger_bus is None else [self._ivr_bus, self._ledger_bus]
        for bus in buses:
            await bus.aclose()
        for bus in buses:
            if bus.client_id is not None:
                await forget_session(self._config, bus.client_id)
