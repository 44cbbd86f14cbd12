"""Call plans: what each call of a load run presses, when, and from which number.

A plan is a pure function of the seed, the mix, the world and the call's index, so the same seed
gives the same calls whatever ``--calls`` or ``--concurrency`` say, and a plan can be made when its
call starts (10,000 live calls need not hold 10,000 plans). A plan is a tuple of *beats*: a think
time, then one key (or the hang-up). The fast mode feeds them, as scenario steps, to a
:class:`~ivr.callers.ScriptedCaller` (silences pass on a virtual clock); the real-time mode plays
them into a :class:`~ivr.callers.LiveCaller` as they fall due.

Beats are plain ``(float, str)`` tuples rather than step objects because a live plan lives as long
as its call: the garbage collector stops tracking tuples of plain values, while 10,000 live plans of
~20 step objects each were a quarter of the objects every collection walked (docs/performance.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ivr.auth.model import CallerKind
from ivr.callers import HANGUP, Press, Silence, Step
from ivr.engine import NO_INPUT_TIMEOUT
from ivr.load.mix import CallKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ivr.load.mix import Mix
    from ivr.load.world import Catalog, Holding

__all__ = ["HANG_UP", "MAX_CALLS", "Beat", "CallPlan", "Planner", "caller_number"]

#: A beat: wait this many seconds, then press this key (or hang up, when it is :data:`HANG_UP`).
Beat = tuple[float, str]
#: The action of a plan's last beat when the caller hangs up instead of waiting for the flow to end.
HANG_UP: Final = "hangup"

#: A silence this long fires the no-input timer once, then the key comes at the replayed prompt.
NO_INPUT_SILENCE: Final = NO_INPUT_TIMEOUT + 1.0
_KIND_KEY: Final = {CallerKind.CONSUMER: "1", CallerKind.BUSINESS: "2"}
_PURPOSE_KEYS: Final = ("2", "3")  # technical, licensing
_SEVERITY_KEYS: Final = "1234"
_WRONG_LENGTH_DIGITS: Final = 6


#: Calls a run can number apart: +15550000000 to +15559999999; one more would not be a US number.
MAX_CALLS: Final = 10_000_000


def caller_number(index: int) -> str:
    """Call ``index``'s E.164 number: one number per call, so failures never add up to a lockout."""
    return f"+1555{index:07d}"


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One call: its kind, number and beats."""

    index: int
    kind: CallKind
    number: str
    beats: tuple[Beat, ...]

    @property
    def keys(self) -> str:
        """Every key pressed, in order: what the caller does, without the pauses."""
        return "".join(action for _, action in self.beats if action != HANG_UP)

    @property
    def steps(self) -> list[Step]:
        """The beats as scenario steps: a :class:`Silence` before each :class:`Press` or the hang-up."""
        steps: list[Step] = []
        for pause, action in self.beats:
            steps += [Silence(pause), HANGUP if action == HANG_UP else Press(action)]
        return steps


class Planner:
    """Makes call ``index``'s plan, the same every time for one seed, mix and catalog."""

    def __init__(self, *, seed: int, mix: Mix, catalog: Catalog) -> None:
        """Draw from ``catalog`` with ``mix``'s weights."""
        self._seed = seed
        self._mix = mix
        self._catalog = catalog
        self._kinds = mix.kinds
        self._weights = [mix.weights[k] for k in self._kinds]

    def plan(self, index: int) -> CallPlan:
        """The plan of call ``index``: a pure function of the seed and the index."""
        rng = random.Random(f"ivr-load-call:{self._seed}:{index}")  # noqa: S311 - reproducible, not secret
        kind = rng.choices(self._kinds, self._weights)[0]
        menus, hang_up = self._keys(kind, rng)
        beats = self._paced(menus, rng, hang_up=hang_up)
        return CallPlan(index=index, kind=kind, number=caller_number(index), beats=beats)

    def _keys(self, kind: CallKind, rng: random.Random) -> tuple[list[tuple[str, bool]], bool]:  # noqa: C901, PLR0911 - one branch per kind
        """The keys of ``kind``, each marked whether it answers a menu; and whether the call then hangs up."""

        def menu(*keys: str) -> list[tuple[str, bool]]:
            return [(k, True) for k in keys]

        def digits(text: str) -> list[tuple[str, bool]]:
            return [(k, False) for k in text + "#"]

        catalog = self._catalog
        if kind is CallKind.SALES:
            return menu("1"), False
        if kind is CallKind.SILENT:
            return [], False
        if kind is CallKind.HANG_UP:
            return menu(rng.choice(_PURPOSE_KEYS), rng.choice("12")), True
        if kind is CallKind.TICKET:
            held = _pick(catalog.open_tickets, rng)
            return menu(rng.choice(_PURPOSE_KEYS), _KIND_KEY[held.kind], "1") + digits(held.digits), False
        if kind is CallKind.SUPPORT_CODE:
            held = _pick(catalog.codes, rng)
            head = menu(rng.choice(_PURPOSE_KEYS), _KIND_KEY[held.kind], "2")
            return head + digits(held.digits) + menu(rng.choice(_SEVERITY_KEYS)), False
        if kind is CallKind.LICENSE_KEY:
            held = _pick(catalog.keys, rng)
            head = menu(rng.choice(_PURPOSE_KEYS), "2", "3")
            return head + digits(held.digits) + menu(rng.choice(_SEVERITY_KEYS)), False
        if kind is CallKind.CLOSED_TICKET:
            held = _pick(catalog.closed_tickets, rng)
            return menu("2", _KIND_KEY[held.kind], "1") + digits(held.digits), True
        if kind is CallKind.UNKNOWN_TICKET:
            return menu("2", rng.choice("12"), "1") + digits(self._unknown(rng, 7)), True
        if kind is CallKind.WRONG_CODE:
            return menu("2", rng.choice("12"), "2") + digits(self._unknown(rng, 10)), True
        # WRONG_LENGTH: a no-match at the code prompt, never a lookup.
        return menu("2", rng.choice("12"), "2") + digits(_random_digits(rng, _WRONG_LENGTH_DIGITS)), True

    def _unknown(self, rng: random.Random, length: int) -> str:
        """Digits of ``length`` that are no code, key or ticket of the world (and no new ticket)."""
        for _ in range(100):
            first = "1" if length == 7 else str(rng.randint(1, 9))  # noqa: PLR2004 - ticket IDs stay below 2000001
            guess = first + _random_digits(rng, length - 1)
            if guess not in self._catalog.taken:
                return guess
        msg = "could not draw an unused number in 100 tries: the world is too dense"
        raise RuntimeError(msg)

    def _paced(self, keys: list[tuple[str, bool]], rng: random.Random, *, hang_up: bool) -> tuple[Beat, ...]:
        """Think time before each key; once in a while a 6 s silence before a menu key (one no-input)."""
        low, high = self._mix.think_seconds
        silent_at = -1
        menu_positions = [i for i, (_, is_menu) in enumerate(keys) if is_menu]
        if menu_positions and rng.random() < self._mix.no_input_share:
            silent_at = rng.choice(menu_positions)
        beats = [
            (NO_INPUT_SILENCE if i == silent_at else round(rng.uniform(low, high), 3), key)
            for i, (key, _) in enumerate(keys)
        ]
        if hang_up:
            beats.append((round(rng.uniform(low, high), 3), HANG_UP))
        return tuple(beats)


def _pick(holdings: Sequence[Holding], rng: random.Random) -> Holding:
    if not holdings:
        msg = "the world has nothing of this kind to call with"
        raise ValueError(msg)
    return holdings[rng.randrange(len(holdings))]


def _random_digits(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(length))
