"""The garbage collector, paced by the event loop, for a process that holds thousands of live calls.

CPython's automatic collection suits a short script, not an event loop with 10,000 live calls.
It starts a young collection when allocations minus deallocations pass a threshold, and a live
call's objects (its coroutines, model and timer handles) outlive the young generations and then
die old: each death lowers the count, so the young generation grows far past the threshold between
collections, and the long pauses that follow made no-input timers fire late (docs/performance.md).

So while :func:`paced_collection` is entered, automatic collection is off and the loop collects
on a schedule instead: every :data:`YOUNG_EVERY` seconds the two younger generations together (they
hold only what was allocated since the last time, a few ms of work), and the whole heap every
:data:`FULL_EVERY` seconds, so cyclic garbage that died old is still reclaimed. Most of a call's
objects are freed by reference counting the moment the call ends anyway. What exists on entry
(modules, the flow's tables, start-up state) is frozen first: no collection walks it again.

The younger two go together because a live call's objects outlive both: collected apart, each
was walked twice on its way to the old generation (the figures are in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["FULL_EVERY", "YOUNG_EVERY", "paced_collection"]

#: Seconds between collections of the two younger generations.
YOUNG_EVERY: Final = 0.05
#: Seconds between full collections (the one pause that grows with the number of live calls).
FULL_EVERY: Final = 600.0


class _Pacer:
    """The schedule: one timer handle on the loop, re-armed after each collection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._full_due = loop.time() + FULL_EVERY
        self._handle = loop.call_later(YOUNG_EVERY, self._collect)

    def cancel(self) -> None:
        self._handle.cancel()

    def _collect(self) -> None:
        if self._loop.time() >= self._full_due:
            gc.collect()
            self._full_due = self._loop.time() + FULL_EVERY
        else:
            gc.collect(1)
        self._handle = self._loop.call_later(YOUNG_EVERY, self._collect)


@contextlib.asynccontextmanager
async def paced_collection() -> AsyncIterator[None]:
    """Collect on the running loop's schedule while entered; automatic collection is back on exit."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    pacer = _Pacer(asyncio.get_running_loop())
    try:
        yield
    finally:
        pacer.cancel()
        if was_enabled:
            gc.enable()
