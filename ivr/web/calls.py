"""One call walked in the console, from "Call" to its final state, on the same system replay uses.

A call runs in its page's session world (`ivr.web.worlds`): a system from
:func:`ivr.bootstrap.build_system` on the console's broker — the same flow, rules, outbox,
publisher and ledger as ``ivr replay`` — kept across the world's calls, so what one call spent or
locked is there for the next. A walk saved after earlier calls in its world says so, since a
replay starts from the fixture world.

The world passes the engine's reports about this call (states, prompts, decisions) here, and the
call reports to its page through ``send``; its events reach the page from the bus, not from here
(`ivr.web.console`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

import structlog

from ivr.callers import Key, LiveCaller
from ivr.clock import RealClock
from ivr.events import EventType
from ivr.ledger.core import Outcome
from ivr.secrets import scrub
from ivr.states.diagram import mermaid
from ivr.states.flow import INITIAL
from ivr.web.clock import ShiftedClock
from ivr.web.panel import Entry, branch_entry, decision_entry, retry_entry
from ivr.web.recording import RecordingCaller, Taken
from ivr.web.transcript import Transcript
from ivr.web.walk import Walk, scenario_yaml

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ivr.auth.decisions import Decision
    from ivr.directory.fixtures import Persona
    from ivr.engine import CallRecord, Heard
    from ivr.events import CloudEvent
    from ivr.states.call import Call
    from ivr.web.worlds import SessionWorld

__all__ = ["TIMER_TICK", "CallRun"]

#: How often the page is told the no-input countdown (seconds): smooth enough to watch.
TIMER_TICK: Final = 0.2

log = structlog.get_logger("ivr.web")


class CallRun:
    """A call in progress (or just ended): its live caller, its system, and what it reported."""

    def __init__(  # noqa: PLR0913 - every part of a call, keyword-only
        self,
        *,
        call_id: str,
        persona: Persona,
        at: datetime,
        world: SessionWorld,
        trainee: str,
        fixture: str | None,
        world_text: str | None,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        """Prepare the call in ``world``; nothing runs until :meth:`start`.

        A saved walk names the packaged world ``fixture``, or (``None``) holds ``world_text`` whole.
        """
        self.id = call_id
        self.persona = persona
        self.at = at
        self.world = world
        self.trainee = trainee  # who placed it, as the room view names them
        self.earlier = world.placed  # calls placed in the world before this one (since its last reset)
        self._fixture, self._world_text = fixture, world_text
        self._page = send
        self.live = LiveCaller(clock=RealClock())  # the countdown runs in real seconds
        self.call: Call | None = None
        self.recorder = RecordingCaller(
            live=self.live, state=lambda: self.call.state if self.call else INITIAL, on_taken=self._taken
        )
        self.clock: ShiftedClock | None = None  # set once the system is built, so the call starts at ``at``
        self.paused = False
        self.scenario: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.transcript = Transcript()

    @property
    def done(self) -> bool:
        """Whether the call's task has finished (its system closed)."""
        return self.task is not None and self.task.done()

    @property
    def over(self) -> bool:
        """Whether the call reached its final state (it may still be settling with the ledger)."""
        return self.done or (self.call is not None and self.call.outcome is not None)

    def start(self) -> asyncio.Task[None]:
        """Run the call as a task of its own."""
        self.task = asyncio.create_task(self._run(), name=f"console-call-{self.id}")
        return self.task

    # -- the trainee's controls ------------------------------------------------------------

    def press(self, key: str) -> None:
        """A key on the keypad."""
        self.live.press(key)

    def silence(self) -> None:
        """Fire the no-input timer now."""
        self.live.silence()

    def hang_up(self) -> None:
        """The caller hangs up."""
        self.live.hang_up()

    def pause(self) -> None:
        """Hold the countdown (the trainer is explaining the prompt)."""
        self.paused = True
        self.live.pause()

    def resume(self) -> None:
        """Restart the countdown from its full length."""
        self.paused = False
        self.live.resume()

    # -- the run -----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        """Tell the page, and the world's roster (the room view)."""
        self._page(message)
        if message["type"] != "timer":
            self.world.show(self.trainee, {**message, "call_id": self.id, "persona": self.persona.id})

    async def _run(self) -> None:
        ticker = asyncio.create_task(self._tick(), name=f"console-timer-{self.id}")
        try:
            system = await self.world.system()
            # The clock is set now, after the build, so that the call starts at the chosen instant.
            self.clock = ShiftedClock(start=self.at)
            self.world.clocked(self.clock.now)
            record = await system.engine.run_call(
                self.recorder, clock=self.clock, number=self.persona.caller, call_id=self.id
            )
            ticker.cancel()
            self._send({"type": "timer", "remaining": None, "paused": False})
            await system.settle()
            entries = await self.world.ledger_entries(record.call.ticket_id)
            for entry in entries:
                self.transcript.ledger(self._clock_now(), entry)
            deducted: dict[str, int] = {}
            for entry in entries:
                if entry.outcome == Outcome.DEDUCTED:
                    deducted[entry.contract_id] = deducted.get(entry.contract_id, 0) + 1
            self._ended(record, deducted)
        except Exception as exc:  # a call that breaks must say so on its page, never hang there
            log.exception("console call failed", call_id=self.id)
            self._send({"type": "error", "message": f"the call stopped: {exc}", "call_over": True})
        finally:
            ticker.cancel()
            self.world.forget(self)
            await self.world.tell()

    def _clock_now(self) -> datetime | None:
        return self.clock.now() if self.clock is not None else None

    def _taken(self, taken: Taken) -> None:
        """A key the IVR took: the phone's screen shows it under the prompt it answers."""
        self.transcript.taken(self._clock_now(), taken)
        if isinstance(taken.input, Key):
            self._send({"type": "taken", "call_id": self.id, "key": taken.input.key, "state": taken.state})

    async def _tick(self) -> None:
        """Tell the page the countdown: seconds left, or paused, or not waiting for input."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.live.deadline
            remaining = None if deadline is None else round(max(0.0, deadline - loop.time()), 1)
            self._send({"type": "timer", "remaining": remaining, "paused": self.paused})
            await asyncio.sleep(TIMER_TICK)

    def _ended(self, record: CallRecord, deducted: dict[str, int]) -> None:
        call = record.call
        description = f"{scrub(self.persona.description)}; walked in the trainer console as call {self.id}"
        walk = Walk(
            name=f"console {self.persona.id}: {call.outcome} ({call.rule})",
            description=description,
            at=self.at,
            fixture=self._fixture,
            world=self._world_text,
            caller=self.persona.caller,
            taken=self.recorder.taken,
            call=call,
            events=[e.type for e in record.events],
            deducted=deducted,
            earlier=self.earlier,
        )
        self.scenario = scenario_yaml(walk)
        summary = {
            "outcome": call.outcome,
            "rule": call.rule,
            "reason": call.reason,
            "queue": call.queue,
            "priority": call.priority,
            "ticket": call.ticket_id,
            "deducted": ", ".join(f"{k}: {v}" for k, v in deducted.items() if v) or "nothing",
        }
        transcript = self.transcript.html(
            title=f"Call {self.id}: {self.persona.id}, {call.outcome}",
            meta=f"{description}; from {self.persona.caller} at {self.at.isoformat(timespec='minutes')}",
            summary=summary,
        )
        self._send(
            {
                "type": "ended",
                "call_id": self.id,
                "outcome": call.outcome,
                "reason": call.reason,
                "rule": call.rule,
                "queue": call.queue,
                "priority": call.priority,
                "ticket": call.ticket_id,
                "deducted": {k: v for k, v in deducted.items() if v},
                "scenario": self.scenario,
                "filename": f"console_{self.persona.id}_{self.id}.yaml".replace("-", "_"),
                "transcript": transcript,
                "transcript_filename": f"transcript_{self.persona.id}_{self.id}.html".replace("-", "_"),
            }
        )

    # -- what the engine tells its observers ------------------------------------------------

    def _state(self, call: Call, *, trigger: str | None = None, source: str | None = None) -> None:
        self._send(
            {
                "type": "state",
                "call_id": call.id,
                "state": call.state,
                "trigger": trigger,
                "source": source,
                "path": list(call.path),
                # The main flow (with the side edges walked), and every edge for the page's toggle.
                "diagram": mermaid(highlight=call.state, path=call.path, side_edges=False),
                "diagram_all": mermaid(highlight=call.state, path=call.path),
            }
        )

    def _entry(self, entry: Entry | None) -> None:
        if entry is not None:
            self.transcript.decision(self._clock_now(), entry)
            self._send({"type": "decision", "call_id": self.id, **entry.to_json()})

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:
        """The call moved: highlight the new state, and note a branch the flow took by itself."""
        self.call = call
        self._state(call, trigger=trigger, source=source)
        self._entry(branch_entry(call, source, dest))

    def on_prompt(self, call: Call, heard: Heard) -> None:
        """The caller heard a prompt: show (and maybe speak) it."""
        self.call = call
        self._entry(retry_entry(call, heard.name))
        self.transcript.prompt(self._clock_now(), heard.name, heard.text)
        self._send({"type": "prompt", "call_id": call.id, "state": call.state, "name": heard.name, "text": heard.text})

    def on_decision(self, call: Call, decision: Decision) -> None:
        """A rule decided: its R-number, sentence and the data behind it."""
        self.call = call
        self._entry(decision_entry(call, decision))

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """The first event starts the picture; the events themselves reach the page from the bus."""
        self.call = call
        self.transcript.event(event)
        if event.type == EventType.CALL_STARTED:
            self._state(call)

    async def stop(self, *, grace: float) -> None:
        """Hang up and wait up to ``grace`` seconds for the call to end and close, then cancel it."""
        task = self.task
        if task is None or task.done():
            return
        self.live.hang_up()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
