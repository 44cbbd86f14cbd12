"""What a caller does: keys, silence, hang-up, read one input at a time by the engine.

The engine asks for the next input with a no-input timeout; a :class:`ScriptedCaller` answers
from a scenario's steps on a virtual clock, a :class:`LiveCaller` from a queue fed by a person
(the trainer console) or a load generator, on the real clock.

Order at one instant: a no-input timer that falls due at the same instant as a keypress fires
first. So ``silence: 5`` followed by a key is one no-input, then the key at the replayed prompt.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ivr.clock import TimerClock, VirtualClock

__all__ = [
    "HANGUP",
    "KEYS",
    "NO_INPUT",
    "HangUp",
    "Input",
    "Key",
    "LiveCaller",
    "NoInput",
    "Press",
    "ScriptedCaller",
    "Silence",
    "Step",
]

KEYS: Final = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class Key:
    """One key pressed."""

    key: str


@dataclass(frozen=True, slots=True)
class NoInput:
    """The no-input timer fired."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hung up."""


NO_INPUT: Final = NoInput()
HANGUP: Final = HangUp()
Input = Key | NoInput | HangUp


@dataclass(frozen=True, slots=True)
class Press:
    """A scenario step: keys pressed one after another, at once."""

    keys: str


@dataclass(frozen=True, slots=True)
class Silence:
    """A scenario step: the caller says nothing for ``seconds``."""

    seconds: float


Step = Press | Silence | HangUp


class Caller(Protocol):
    """Where the engine reads a call's input from."""

    async def next_input(self, timeout: float) -> Input:
        """The next key, or ``NO_INPUT`` after ``timeout`` seconds of nothing, or ``HANGUP``."""
        ...


class ScriptedCaller:
    """A caller following scenario steps on a virtual clock; silence costs no real time.

    When the steps run out without a hang-up the line stays silent, as a real caller who put the
    phone down on the desk would: the no-input timer fires until the flow gives up.
    """

    def __init__(self, steps: Iterable[Step], *, clock: VirtualClock) -> None:
        """Follow ``steps``, moving ``clock`` through each silence."""
        self._steps = deque(steps)
        self._keys: deque[str] = deque()
        self._silence = 0.0
        self._clock = clock

    async def next_input(self, timeout: float) -> Input:
        """The next scripted input, advancing the virtual clock through silences."""
        await asyncio.sleep(0)  # let other calls run: a script never blocks on its own
        while True:
            if self._silence > 0:
                if self._silence >= timeout:  # the timer is due no later than the next input
                    self._clock.advance(timeout)
                    self._silence -= timeout
                    return NO_INPUT
                self._clock.advance(self._silence)
                self._silence = 0
            if self._keys:
                return Key(self._keys.popleft())
            if not self._steps:
                self._clock.advance(timeout)
                return NO_INPUT
            step = self._steps.popleft()
            if isinstance(step, HangUp):
                return HANGUP
            if isinstance(step, Press):
                self._keys.extend(step.keys)
            else:
                self._silence = step.seconds


class LiveCaller:
    """A caller whose inputs arrive as they happen: keys from a person or a load generator.

    The no-input countdown runs on ``clock`` and can be paused (a trainer explaining a prompt) or
    cut short (the trainer's "Silence" button, which is :meth:`silence`).

    A wait is one future and one timer handle, resolved by whichever comes first: an input or the
    timer. Ten thousand live calls wait at once under load, and a task per wait (or three, as a
    queue getter, a sleep and a pause watcher would be) made the loop itself the bottleneck.
    """

    def __init__(self, *, clock: TimerClock) -> None:
        """Start with nothing pressed and the countdown running."""
        self._clock = clock
        self._pending: deque[Input] = deque()  # inputs not yet read by the engine, in order
        self._waiter: asyncio.Future[Input] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._paused = False
        self.deadline: float | None = None  # loop time when the current countdown fires

    def press(self, key: str) -> None:
        """A key pressed now."""
        if key not in KEYS:
            msg = f"not a phone key: {key!r}"
            raise ValueError(msg)
        self._deliver(Key(key))

    def silence(self) -> None:
        """Let the no-input timer fire now."""
        self._deliver(NO_INPUT)

    def hang_up(self) -> None:
        """The caller hangs up."""
        self._deliver(HANGUP)

    def pause(self) -> None:
        """Stop the no-input countdown until :meth:`resume`."""
        self._paused = True
        self._stop_countdown()

    def resume(self) -> None:
        """Restart a paused countdown from its full length."""
        self._paused = False
        if self._waiter is not None and not self._waiter.done() and self._timer is None:
            self._start_countdown()

    async def next_input(self, timeout: float) -> Input:
        """The next input; ``NO_INPUT`` once ``timeout`` seconds pass with the countdown running."""
        if self._pending:
            return self._pending.popleft()
        self._waiter = asyncio.get_running_loop().create_future()
        self._timeout = timeout
        if not self._paused:
            self._start_countdown()
        try:
            return await self._waiter
        finally:
            self._waiter = None
            self._stop_countdown()

    def _deliver(self, got: Input) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._pending.append(got)
            return
        if self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline:
            # The timer is due but its callback has not run yet: at one instant the timer fires first.
            self._pending.append(got)
            got = NO_INPUT
        waiter.set_result(got)

    def _start_countdown(self) -> None:
        self.deadline = asyncio.get_running_loop().time() + self._timeout
        self._timer = self._clock.call_later(self._timeout, self._fire)

    def _stop_countdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.deadline = None

    def _fire(self) -> None:
        self._timer = None
        self.deadline = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(NO_INPUT)
