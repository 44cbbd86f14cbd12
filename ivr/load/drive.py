"""Plays a call plan into a live caller in real time, with one timer per call and no task.

Ten thousand live calls each waiting a think time would be ten thousand sleeping tasks; a chain of
``loop.call_later`` handles costs one small handle per call instead, and the press happens on the
loop the engine runs on, as a person's key arrives from the trainer console.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ivr.load.plan import HANG_UP

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ivr.callers import LiveCaller
    from ivr.load.plan import Beat

__all__ = ["ScriptDriver"]


class ScriptDriver:
    """Presses a plan's keys into ``caller`` as their think times elapse; :meth:`cancel` stops it."""

    def __init__(self, *, caller: LiveCaller, beats: Sequence[Beat]) -> None:
        """Drive ``caller`` through ``beats`` once :meth:`start` is called."""
        self._caller = caller
        self._beats = beats
        self._waited = False  # whether the current beat's pause has elapsed
        self._next = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Play from the first step, on the running loop."""
        self._play()

    def cancel(self) -> None:
        """Stop: the call is over, nothing more is pressed."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._next = len(self._beats)

    def _play(self) -> None:
        self._handle = None
        while self._next < len(self._beats):
            pause, action = self._beats[self._next]
            if pause > 0 and not self._waited:
                self._waited = True
                self._handle = asyncio.get_running_loop().call_later(pause, self._play)
                return
            self._next += 1
            self._waited = False
            if action == HANG_UP:
                self._caller.hang_up()
                return
            self._caller.press(action)
