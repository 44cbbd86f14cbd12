"""The composition root, where every entry point assembles the same parts the same way.

Replay, the CLI, the tests, the web console and the load generator all build their system here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ivr.directory.sqlite import Directory
from ivr.engine import Engine
from ivr.events import CloudEvent, EventType, topic_for
from ivr.ledger.service import LedgerService
from ivr.ledger.store import LedgerStore

if TYPE_CHECKING:
    from pathlib import Path

    from ivr.directory.fixtures import World

__all__ = ["InProcessLink", "Link", "System", "build_system"]

_TICKET_TOPIC = topic_for(EventType.TICKET_CREATED)


class Link(Protocol):
    """What carries the IVR's outbox to the ledger and the ledger's answers back."""

    async def settle(self) -> None:
        """Return once every event emitted so far has reached the ledger and its answer come back."""
        ...

    async def close(self) -> None:
        """Stop carrying."""
        ...


class InProcessLink:
    """The ledger called directly, with no broker: for unit tests of the whole flow."""

    def __init__(self, *, directory: Directory, service: LedgerService) -> None:
        """Carry between ``directory``'s outbox and ``service``."""
        self._directory = directory
        self._service = service

    async def settle(self) -> None:
        """Drain the outbox into the ledger, then take its balances back."""
        while rows := await self._directory.unsent(500):
            await self._service.handle(p.encode() for _, topic, p in rows if topic == _TICKET_TOPIC)
            now = datetime.now(UTC).isoformat()
            answers = await self._service.store.unpublished()
            for _, payload in answers:
                await self._directory.take_ledger_event(CloudEvent.from_dict(json.loads(payload)))
            await self._service.store.mark_published((key for key, _ in answers), now)
            await self._directory.mark_sent((seq for seq, _, _ in rows), now)

    async def close(self) -> None:
        """Nothing to stop."""


@dataclass(slots=True, kw_only=True)
class System:
    """One IVR with its directory, its ledger and the link between them."""

    directory: Directory
    engine: Engine
    ledger: LedgerStore
    link: Link

    async def settle(self) -> None:
        """Wait until the ledger has answered everything emitted so far."""
        await self.link.settle()

    async def close(self) -> None:
        """Stop the link and close both databases."""
        await self.link.close()
        await self.directory.close()
        await self.ledger.close()


async def build_system(*, world: World, workdir: Path, source: str = "ivr-1") -> System:
    """A fresh IVR and ledger for ``world``, with their SQLite files in ``workdir``."""
    directory = await Directory.open(workdir / "ivr.db")
    await directory.load(world)
    ledger = await LedgerStore.open(workdir / "ledger.db")
    await ledger.load_opening({c.id: c.incidents for c in world.contracts.values()})
    service = LedgerService(store=ledger, source=f"{source}-ledger")
    link = InProcessLink(directory=directory, service=service)
    engine = Engine(directory=directory, source=source)
    return System(directory=directory, engine=engine, ledger=ledger, link=link)
