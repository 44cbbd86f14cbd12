"""What a bus has received and no one has taken yet, handed out one at a time or in batches.

Both buses put each message here from their client's callback, with no task per message. A
consumer that commits in batches (the ledger) takes everything waiting at once with
:meth:`Inbox.batches`.

With manual acknowledgement, a message that arrived on a connection that has since dropped is
skipped when taken: it was never acked, so the broker sends it again on the new connection.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ivr.bus.base import Delivery

__all__ = ["Inbox"]


class Inbox:
    """A FIFO of deliveries, each tagged with the connection (generation) that brought it."""

    def __init__(self, *, skip_stale: bool) -> None:
        """``skip_stale``: drop deliveries of earlier connections when taken (manual ack)."""
        self._skip_stale = skip_stale
        self._items: collections.deque[tuple[int, Delivery]] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        #: The current connection's number: 0 before the first, then 1, 2, ...
        self.generation = 0

    def new_generation(self) -> int:
        """A new connection begins: what arrived before it is stale from now on."""
        self.generation += 1
        return self.generation

    def put(self, generation: int, delivery: Delivery) -> None:
        """A message arrived on connection ``generation``."""
        self._items.append((generation, delivery))
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        """Nothing more will arrive; takers get what is left, then the end (or ``error``)."""
        self._closed = True
        self._error = error
        self._ready.set()

    async def take(self, limit: int) -> list[Delivery]:
        """Wait for at least one delivery and return up to ``limit``; ``[]`` once closed and empty."""
        while True:
            batch: list[Delivery] = []
            items = self._items
            while items and len(batch) < limit:
                generation, delivery = items.popleft()
                if not self._skip_stale or generation == self.generation:
                    batch.append(delivery)
            if batch:
                return batch
            if self._closed:
                if self._error is not None:
                    raise self._error
                return batch
            self._ready.clear()
            await self._ready.wait()

    async def batches(self, limit: int) -> AsyncIterator[list[Delivery]]:
        """Every delivery, in batches of what is waiting (at most ``limit``), until closed."""
        while batch := await self.take(limit):
            yield batch

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Every delivery, one at a time, until closed."""
        while batch := await self.take(1):
            yield batch[0]
