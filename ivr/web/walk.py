"""A walked call as a scenario file: "Save as scenario" in the trainer console.

A trainer's walk becomes a regression check the telephony team can keep: the steps are what the
engine took from the caller (`ivr.web.recording`), and the expectations are what the call did.
The text follows `docs/scenarios.md` and reads like the hand-written scenarios, one commented step
per line, so `ivr replay FILE` passes it as written. Free text is written as JSON strings (which
are YAML double-quoted scalars), so no name or description can break the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ivr.callers import HangUp, Key, NoInput
from ivr.engine import NO_INPUT_TIMEOUT
from ivr.states.flow import STATES, Kind

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from ivr.states.call import Call
    from ivr.web.recording import Taken

__all__ = ["Step", "Walk", "scenario_yaml", "steps_of"]

_COMMENT_COLUMN: Final = 24


@dataclass(frozen=True, slots=True)
class Step:
    """One scenario step: ``press`` (keys), ``silence`` (seconds as text) or ``hangup``, and a comment."""

    kind: str
    value: str
    comment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Walk:
    """Everything a saved scenario says: who called when, what they did, and what happened."""

    name: str
    description: str
    at: datetime
    fixture: str | None  # the packaged world's name; None: ``world`` holds the world whole
    caller: str
    taken: Sequence[Taken]
    call: Call
    events: Sequence[str]  # the call's own event types, in order
    deducted: Mapping[str, int] = field(default_factory=dict)
    world: str | None = None  # a world of one's own, embedded so the file replays wherever it is kept
    earlier: int = 0  # calls placed in the session world before this walk: a replay starts without them


def steps_of(taken: Sequence[Taken]) -> list[Step]:
    """The inputs as scenario steps: an entry's digits up to ``#`` in one step, each menu key in its own."""
    steps: list[Step] = []
    run: list[str] = []  # digits of an entry being typed, not yet ended by '#'
    run_state = ""

    def end_run() -> None:
        if run:
            steps.append(Step("press", "".join(run), run_state))
            run.clear()

    for item in taken:
        got, state = item.input, item.state
        if isinstance(got, Key) and got.key != "*" and STATES[state].kind is Kind.DIGITS:
            if run and run_state != state:
                end_run()
            run.append(got.key)
            run_state = state
            if got.key == "#":
                end_run()
            continue
        end_run()
        if isinstance(got, HangUp):
            steps.append(Step("hangup", "", f"hang up at {state}"))
        elif isinstance(got, NoInput):
            steps.append(Step("silence", f"{NO_INPUT_TIMEOUT:g}", f"no input at {state}"))
        elif got.key == "*":
            steps.append(Step("press", "*", f"{state}: replay the prompt"))
        else:
            trigger = STATES[state].options.get(got.key, "not an option")
            steps.append(Step("press", got.key, f"{state}: {trigger}"))
    end_run()
    return steps


def _names(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _step_line(step: Step) -> str:
    if step.kind == "hangup":
        text = "  - hangup"
    elif step.kind == "silence":
        text = f"  - silence: {step.value}"
    else:
        text = f"  - press: {json.dumps(step.value)}"
    return f"{text:<{_COMMENT_COLUMN}} # {step.comment}"


def _world_lines(walk: Walk) -> list[str]:
    """``fixture: NAME`` for a packaged world; else the world itself, so the file replays in any folder."""
    if walk.fixture is not None:
        return [
            f"# The fixture is a world packaged with ivr, so the file replays in any folder (here: {walk.fixture}).",
            f"fixture: {json.dumps(walk.fixture)}",
        ]
    assert walk.world is not None  # noqa: S101 - a walk names its world one way or the other
    return [
        "# The fixture world is held whole under 'world', so the file replays in any folder.",
        "world: |",
        *(f"  {line}".rstrip() for line in walk.world.splitlines()),
    ]


def _earlier(calls: int) -> list[str]:
    if not calls:
        return []
    return [
        f"# Walked after {calls} earlier call(s) in its session world; a replay starts from the fixture world,",
        "# so a walk that relied on them (a lockout, a balance spent, a new ticket) goes otherwise.",
    ]


def scenario_yaml(walk: Walk) -> str:
    """The scenario file's text."""
    call = walk.call
    lines = [
        "# Saved from the trainer console (`ivr serve`): replay it with `ivr replay FILE`.",
        *_earlier(walk.earlier),
        f"name: {json.dumps(walk.name)}",
        f"description: {json.dumps(walk.description)}",
        f"at: {json.dumps(walk.at.isoformat(timespec='seconds'))}",
        *_world_lines(walk),
        f"caller: {json.dumps(walk.caller)}",
        "steps:",
        *(_step_line(step) for step in steps_of(walk.taken)),
    ]
    if not walk.taken:
        lines[-1] = "steps: []"
    lines += ["expect:", f"  outcome: {call.outcome}"]
    if call.reason is not None:
        lines.append(f"  reason: {call.reason}")
    if call.rule is not None:
        lines.append(f"  rule: {call.rule}")
    if call.queue is not None:
        lines.append(f"  queue: {json.dumps(call.queue)}")
    if call.priority is not None:
        lines.append(f"  priority: {call.priority}")
    lines += [
        f"  prompts: {_names(call.prompts)}",
        f"  events: {_names([e.removeprefix('ivr.') for e in walk.events])}",
        f"  states: {_names(call.path)}",
        "  deducted: {" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in sorted(walk.deducted.items()) if v) + "}",
    ]
    return "\n".join(lines) + "\n"
