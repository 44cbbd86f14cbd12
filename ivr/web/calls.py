"""One call walked in the console, from "Call" to its final state, on the same system replay uses.

Each call gets a fresh system from :func:`ivr.bootstrap.build_system` on the console's broker —
the same flow, rules, outbox, publisher and ledger as ``ivr replay`` — built from the fixture
world. Fresh, because a saved walk is replayed on a fresh world: a walk that ran on a world other
trainees had already changed (a balance spent, a number locked out) would not replay as it went.
It also means trainees never see each other's effects.

The call watches itself as an engine observer (states, prompts, decisions) and reports to its
page through ``send``; its events reach the page from the bus, not from here (`ivr.web.console`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import TYPE_CHECKING, Any, Final

import structlog

from ivr.bootstrap import System, build_system
from ivr.callers import LiveCaller
from ivr.clock import RealClock
from ivr.events import EventType
from ivr.secrets import scrub
from ivr.states.diagram import mermaid
from ivr.states.flow import INITIAL
from ivr.stores import scratch_schema
from ivr.web.clock import ShiftedClock
from ivr.web.panel import Entry, branch_entry, decision_entry, retry_entry
from ivr.web.recording import RecordingCaller
from ivr.web.walk import Walk, scenario_yaml

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from ivr.auth.decisions import Decision
    from ivr.bus.url import BrokerConfig
    from ivr.directory.fixtures import Persona, World
    from ivr.engine import CallRecord, Heard
    from ivr.events import CloudEvent
    from ivr.states.call import Call
    from ivr.stores import Store

__all__ = ["BUILD_TIMEOUT", "TIMER_TICK", "CallRun"]

#: How often the page is told the no-input countdown (seconds): smooth enough to watch.
TIMER_TICK: Final = 0.2
#: How long building a call's system (its broker connections) may take before the call gives up.
BUILD_TIMEOUT: Final = 10.0

log = structlog.get_logger("ivr.web")


class CallRun:
    """A call in progress (or just ended): its live caller, its system, and what it reported."""

    def __init__(  # noqa: PLR0913 - every part of a call, keyword-only
        self,
        *,
        call_id: str,
        persona: Persona,
        at: datetime,
        world: World,
        broker: BrokerConfig,
        workdir: Path,
        fixture: str,
        send: Callable[[dict[str, Any]], None],
        own_ledger: bool = True,
        store: Store | None = None,
    ) -> None:
        """Prepare the call; nothing runs until :meth:`start`.

        With ``own_ledger=False`` the deductions come from an `ivr ledger` process on the broker.
        On a PostgreSQL ``store`` the call's world is a schema of its own, dropped when it ends.
        """
        self._own_ledger = own_ledger
        self._store = store
        self.id = call_id
        self.persona = persona
        self.at = at
        self._world, self._broker, self._workdir, self._fixture = world, broker, workdir, fixture
        self._send = send
        self.live = LiveCaller(clock=RealClock())  # the countdown runs in real seconds
        self.call: Call | None = None
        self.recorder = RecordingCaller(live=self.live, state=lambda: self.call.state if self.call else INITIAL)
        self.paused = False
        self.scenario: str | None = None
        self.task: asyncio.Task[None] | None = None

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

    async def _run(self) -> None:
        if self._store is None or self._store.dsn is None:
            await self._run_in(None)
            return
        async with scratch_schema(self._store, "console") as schema:
            await self._run_in(schema)

    async def _run_in(self, schema: str | None) -> None:
        system: System | None = None
        ticker = asyncio.create_task(self._tick(), name=f"console-timer-{self.id}")
        workdir = self._workdir / self.id
        try:
            workdir.mkdir(parents=True)
            try:
                async with asyncio.timeout(BUILD_TIMEOUT):
                    system = await build_system(
                        world=self._world,
                        workdir=workdir,
                        source=f"console-{self.id}",
                        broker=self._broker,
                        own_ledger=self._own_ledger,
                        store=self._store,
                        schema=schema,
                    )
            except TimeoutError:
                msg = f"the broker at {self._broker} did not answer within {BUILD_TIMEOUT:g} s"
                raise RuntimeError(msg) from None
            system.engine.observers.append(self)
            # The clock is set now, after the build, so that the call starts at the chosen instant.
            clock = ShiftedClock(start=self.at)
            record = await system.engine.run_call(
                self.recorder, clock=clock, number=self.persona.caller, call_id=self.id
            )
            ticker.cancel()
            self._send({"type": "timer", "remaining": None, "paused": False})
            await system.settle()
            assert system.ledger is not None  # noqa: S101 - the console builds its own ledger
            deducted = await system.ledger.deducted()
            self._ended(record, deducted)
        except Exception as exc:  # a call that breaks must say so on its page, never hang there
            log.exception("console call failed", call_id=self.id)
            self._send({"type": "error", "message": f"the call stopped: {exc}", "call_over": True})
        finally:
            ticker.cancel()
            if system is not None:
                await system.close()
            shutil.rmtree(workdir, ignore_errors=True)

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
            caller=self.persona.caller,
            taken=self.recorder.taken,
            call=call,
            events=[e.type for e in record.events],
            deducted=deducted,
        )
        self.scenario = scenario_yaml(walk)
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
        self._send({"type": "prompt", "call_id": call.id, "state": call.state, "name": heard.name, "text": heard.text})

    def on_decision(self, call: Call, decision: Decision) -> None:
        """A rule decided: its R-number, sentence and the data behind it."""
        self.call = call
        self._entry(decision_entry(call, decision))

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """The first event starts the picture; the events themselves reach the page from the bus."""
        self.call = call
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
