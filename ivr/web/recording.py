"""A live caller that writes down each input in the order the engine takes it.

"Save as scenario" must replay the walk exactly. Recording the trainee's clicks would not do:
keys pressed while the engine is busy wait in a queue, and a countdown that expires between two
keys must land between them. What the engine *took* from the caller, in order, is the walk; a
:class:`~ivr.callers.ScriptedCaller` fed the same inputs takes the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from ivr.callers import Caller, Input

__all__ = ["RecordingCaller", "Taken"]


@dataclass(frozen=True, slots=True)
class Taken:
    """One input the engine took, and the state the call was in when it took it."""

    input: Input
    state: str


class RecordingCaller:
    """Wraps a caller (the console's :class:`~ivr.callers.LiveCaller`); :attr:`taken` lists what the engine read."""

    def __init__(
        self, *, live: Caller, state: Callable[[], str], on_taken: Callable[[Taken], None] | None = None
    ) -> None:
        """Read from ``live``; ``state`` tells the call's state at the moment an input is taken.

        ``on_taken`` hears each input as it is taken: the page shows the keys the IVR took at the
        prompt now playing, so keys typed ahead of a prompt appear under that prompt, not before it.
        """
        self.live = live
        self._state = state
        self._on_taken = on_taken
        self.taken: list[Taken] = []

    async def next_input(self, timeout: float) -> Input:
        """The live caller's next input, written down before the engine acts on it."""
        got = await self.live.next_input(timeout)
        taken = Taken(got, self._state())
        self.taken.append(taken)
        if self._on_taken is not None:
            self._on_taken(taken)
        return got
