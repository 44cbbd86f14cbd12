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

    from ivr.clock import Clock, VirtualClock

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
    """

    def __init__(self, *, clock: Clock) -> None:
        """Start with nothing pressed and the countdown running."""
        self._clock = clock
        self._inputs: asyncio.Queue[Input] = asyncio.Queue()
        self._early: deque[Input] = deque()  # an input that arrived as the timer fired
        self._running = asyncio.Event()
        self._paused = asyncio.Event()
        self._running.set()
        self.deadline: float | None = None  # loop time when the current countdown fires

    def press(self, key: str) -> None:
        """A key pressed now."""
        if key not in KEYS:
            msg = f"not a phone key: {key!r}"
            raise ValueError(msg)
        self._inputs.put_nowait(Key(key))

    def silence(self) -> None:
        """Let the no-input timer fire now."""
        self._inputs.put_nowait(NO_INPUT)

    def hang_up(self) -> None:
        """The caller hangs up."""
        self._inputs.put_nowait(HANGUP)

    def pause(self) -> None:
        """Stop the no-input countdown until :meth:`resume`."""
        self._running.clear()
        self._paused.set()

    def resume(self) -> None:
        """Restart a paused countdown from its full length."""
        self._paused.clear()
        self._running.set()

    async def next_input(self, timeout: float) -> Input:
        """The next input; ``NO_INPUT`` once ``timeout`` seconds pass with the countdown running."""
        loop = asyncio.get_running_loop()
        while True:
            if self._early:
                return self._early.popleft()
            if not self._inputs.empty():
                return self._inputs.get_nowait()
            if not self._running.is_set():
                getter = asyncio.ensure_future(self._inputs.get())
                resumed = asyncio.ensure_future(self._running.wait())
                await asyncio.wait({getter, resumed}, return_when=asyncio.FIRST_COMPLETED)
                resumed.cancel()
                if getter.done():
                    return getter.result()
                getter.cancel()
                continue
            self.deadline = loop.time() + timeout
            getter = asyncio.ensure_future(self._inputs.get())
            timer = asyncio.ensure_future(self._clock.sleep(timeout))
            paused = asyncio.ensure_future(self._paused.wait())
            try:
                await asyncio.wait({getter, timer, paused}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.deadline = None
                timer_fired = timer.done() and not timer.cancelled()
                for task in (timer, paused):
                    task.cancel()
            if getter.done():
                if not timer_fired:
                    return getter.result()
                self._early.append(getter.result())  # the timer fires first at one instant
                return NO_INPUT
            getter.cancel()
            if timer_fired:
                return NO_INPUT
