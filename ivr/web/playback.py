"""A scenario file played back on the console's diagram, step by step, as its calls went live.

The scenario runs as ``ivr replay`` runs it (:func:`ivr.replay.runner.run_scenario`, in process,
on the simulated clock, so it takes a moment however long its silences), with a
:class:`FrameRecorder` watching the engine. Each frame is the very message the page gets during a
live call — a state with its diagram, a prompt, a decision with its rule, an event as JSON — so
the page plays a recorded call through the same code as a live one, and can step forward and back
by redrawing up to any frame. Frames of their own mark where each call begins and how it ended
(and whether it met the scenario's expectations).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.directory.fixtures import load_world
from ivr.events import EventType
from ivr.replay.outline import scenarios_from_text
from ivr.replay.runner import run_scenario
from ivr.states.diagram import mermaid
from ivr.states.flow import STATES, Kind
from ivr.web.panel import Entry, branch_entry, decision_entry, retry_entry
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ivr.auth.decisions import Decision
    from ivr.engine import Heard
    from ivr.events import CloudEvent
    from ivr.replay.runner import CallResult, ScenarioResult
    from ivr.replay.scenario import Scenario
    from ivr.states.call import Call

__all__ = ["FrameRecorder", "play", "read_scenarios"]


def read_scenarios(name: str, text: str) -> list[Scenario]:
    """The scenario in ``text`` (a file called ``name``), one per row of an outline's ``examples``.

    A :class:`SourceError` names the line that is wrong.

    A fixture path in it is taken relative to the server's folder; a packaged world or an embedded
    one needs no file at all.
    """
    return scenarios_from_text(Path.cwd() / Path(name).name, text)


class FrameRecorder:
    """An engine observer that writes down each call's reports as the page's messages, in order."""

    def __init__(self, example: int | None = None) -> None:
        """No frames yet; ``example`` is the row of an outline's examples being played, if any."""
        self.frames: list[dict[str, Any]] = []
        self._calls: list[str] = []
        self._example = example

    def _begin(self, call: Call) -> None:
        if call.id not in self._calls:
            self._calls.append(call.id)
            self.frames.append(
                {
                    "type": "replay_call",
                    "index": len(self._calls),
                    "example": self._example,
                    "call_id": call.id,
                    "caller": call.caller,
                    "at": call.started_at.isoformat(timespec="seconds"),
                }
            )

    def _state(self, call: Call, source: str | None = None) -> None:
        self.frames.append(
            {
                "type": "state",
                "call_id": call.id,
                "state": call.state,
                # The caller answered a prompt: the phone's screen starts afresh (live, a key does that).
                "heard": source is not None and STATES[source].kind in {Kind.MENU, Kind.DIGITS},
                "path": list(call.path),
                "diagram": mermaid(highlight=call.state, path=call.path, side_edges=False),
                "diagram_all": mermaid(highlight=call.state, path=call.path),
            }
        )

    def _entry(self, entry: Entry | None) -> None:
        if entry is not None:
            self.frames.append({"type": "decision", **entry.to_json()})

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:  # noqa: ARG002 - the protocol's
        """The call moved: the diagram's new state, and a branch the flow took by itself."""
        self._state(call, source)
        self._entry(branch_entry(call, source, dest))

    def on_prompt(self, call: Call, heard: Heard) -> None:
        """A prompt the caller heard."""
        self._entry(retry_entry(call, heard.name))
        self.frames.append({"type": "prompt", "call_id": call.id, "name": heard.name, "text": heard.text})

    def on_decision(self, call: Call, decision: Decision) -> None:
        """A rule decided."""
        self._entry(decision_entry(call, decision))

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """One of the call's events, as the bus carries it; the first one starts the call's picture."""
        self._begin(call)
        self.frames.append({"type": "event", "topic": event.topic, "event": event.to_dict()})
        if event.type == EventType.CALL_STARTED:
            self._state(call)


async def play(scenarios: Sequence[Scenario], *, workdir: Path) -> dict[str, Any]:
    """Run ``scenarios`` (a file's, an outline's rows in turn), each on a fresh world under ``workdir``.

    The page's ``replay`` message: every call's frames in order, each call closed by its result.
    """
    frames: list[dict[str, Any]] = []
    results = []
    for scenario in scenarios:
        try:
            world = load_world(scenario.fixture)
        except SourceError as exc:
            return {"type": "error", "message": f"the scenario's fixture world cannot be read: {exc}"}
        recorder = FrameRecorder(scenario.example)
        with tempfile.TemporaryDirectory(prefix="playback-", dir=workdir) as folder:
            result = await run_scenario(scenario, world, workdir=Path(folder), observers=[recorder])
        results.append(result)
        for frame in recorder.frames:
            if frame["type"] == "replay_call" and frames:  # the call before it has ended
                frames.append(_result(_found(results, _call_of(frames))))
            frames.append(frame)
    if frames:
        frames.append(_result(_found(results, _call_of(frames))))
    return {
        "type": "replay",
        "name": scenarios[0].name,
        "runs": len(scenarios),
        "calls": sum(len(s.calls) for s in scenarios),
        "passed": all(r.passed for r in results),
        "error": next((r.error for r in results if r.error), None),
        "frames": frames,
    }


def _found(results: Sequence[ScenarioResult], call_id: str) -> CallResult | None:
    """The result of call ``call_id``, from whichever run made it."""
    return next((c for r in results for c in r.calls if c.record.call.id == call_id), None)


def _call_of(frames: list[dict[str, Any]]) -> str:
    """The id of the call the last of ``frames`` belongs to."""
    return str(next(f["call_id"] for f in reversed(frames) if f["type"] == "replay_call"))


def _result(call: CallResult | None) -> dict[str, Any]:
    if call is None:
        return {"type": "replay_result", "outcome": None, "failures": ["the call did not finish"]}
    record = call.record.call
    return {
        "type": "replay_result",
        "call_id": record.id,
        "outcome": record.outcome,
        "rule": record.rule,
        "reason": record.reason,
        "queue": record.queue,
        "priority": record.priority,
        "ticket": record.ticket_id,
        "deducted": {k: v for k, v in call.deducted.items() if v},
        "failures": call.failures,
    }
