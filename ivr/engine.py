"""The engine: runs one call through the flow, doing the I/O the flow asks for between transitions.

Per call it reads input from a caller, fires triggers on the shared machine (`ivr.states.flow`),
plays prompts, asks the directory and the rules (`ivr.auth`) at the action states, and emits
CloudEvents through the directory's outbox. Thousands of calls run at once as tasks in one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog

from ivr import phone
from ivr.auth import attempts, fallback, lockout, rules
from ivr.auth.decisions import Decision, Reason, Rule
from ivr.auth.model import Method, Plan, Severity, Ticket, TicketStatus
from ivr.auth.routing import SALES_QUEUE, priority, queue_for
from ivr.callers import HangUp, Key, NoInput
from ivr.directory.fixtures import US_EASTERN
from ivr.events import CloudEvent, EventType
from ivr.states.call import Call
from ivr.states.flow import FLOW, STATES, Kind
from ivr.states.prompts import render

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from ivr.auth.model import Contract
    from ivr.callers import Caller
    from ivr.clock import Clock
    from ivr.directory.storage import DirectoryStorage

__all__ = ["NO_INPUT_TIMEOUT", "CallRecord", "Engine", "Heard", "Observer"]

#: Seconds of silence at a prompt before it counts as no-input.
NO_INPUT_TIMEOUT: Final = 5.0

log = structlog.get_logger("ivr.engine")


class Observer(Protocol):
    """Watches calls as they happen (the trainer console); every method is called synchronously."""

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:
        """The call moved from ``source`` to ``dest`` on ``trigger``."""

    def on_prompt(self, call: Call, heard: Heard) -> None:
        """The caller heard a prompt."""

    def on_decision(self, call: Call, decision: Decision) -> None:
        """A rule decided something about the call."""

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """The call emitted an event (written to the outbox with the next commit)."""


@dataclass(frozen=True, slots=True)
class Heard:
    """A prompt as the caller heard it."""

    name: str
    text: str


@dataclass(slots=True)
class CallRecord:
    """Everything one call produced, for replay's checks and the trainer console."""

    call: Call
    heard: list[Heard] = field(default_factory=list)
    events: list[CloudEvent] = field(default_factory=list)


class _Run:
    """One call in progress: its model, clock, event sequence and the events not yet written."""

    def __init__(self, engine: Engine, call: Call, caller: Caller, clock: Clock) -> None:
        self.engine, self.call, self.caller, self.clock = engine, call, caller, clock
        self.record = CallRecord(call)
        self.pending: list[CloudEvent] = []
        self.log = log.bind(call_id=call.id)

    # -- what the caller hears and what the bus is told ----------------------------------

    def play(self, name: str, **context: str) -> None:
        heard = Heard(name, render(name, **context))
        self.call.prompts.append(name)
        self.record.heard.append(heard)
        self.log.info("prompt", prompt=name, state=self.call.state)
        for observer in self.engine.observers:
            observer.on_prompt(self.call, heard)

    def emit(self, event_type: EventType, **data: Any) -> CloudEvent:  # noqa: ANN401
        event = CloudEvent(
            type=event_type.value,
            source=self.engine.source,
            subject=self.call.id,
            time=self.clock.now().isoformat(),
            sequence=len(self.record.events) + 1,
            data=data,
        )
        self.record.events.append(event)
        self.pending.append(event)
        self.log.info("event", type=event_type, sequence=event.sequence)
        for observer in self.engine.observers:
            observer.on_event(self.call, event)
        return event

    def take_pending(self) -> list[CloudEvent]:
        events, self.pending = self.pending, []
        return events

    async def flush(self) -> None:
        if self.pending:
            await self.engine.directory.add_events(self.take_pending())
            self.engine.notify()

    def decide(self, decision: Decision) -> None:
        self.call.decisions.append(decision)
        for observer in self.engine.observers:
            observer.on_decision(self.call, decision)
        self.log.info(
            "decision",
            granted=decision.granted,
            rule=decision.rule,
            reason=decision.reason,
            detail=decision.detail,
        )

    # -- the flow ----------------------------------------------------------------------------

    def fire(self, trigger: str, **kwargs: Any) -> bool:  # noqa: ANN401
        before = len(self.call.path)
        state = self.call.state
        done: bool = FLOW.events[trigger].trigger(self.call, **kwargs)
        if done and len(self.call.path) > before:
            self.log.info("transition", trigger=trigger, source=state, dest=self.call.state)
            for observer in self.engine.observers:
                observer.on_transition(self.call, trigger, state, self.call.state)
            self.enter()
        return done

    def enter(self) -> None:
        """Play the prompt of the state just entered."""
        spec = STATES[self.call.state]
        if spec.prompt is None:
            return
        context = {
            "kind": str(self.call.kind),
            "ticket_spoken": " ".join(self.call.ticket_id or ""),
            "queue": self.call.queue or "",
        }
        self.play(spec.prompt.format(**context), **context)

    def retry(self, trigger: str, prompt: str, reason: Reason) -> None:
        """A no-input or no-match: say so and play the prompt again, or give up on the third in a row."""
        self.play(prompt)
        state = self.call.state
        if not self.fire(trigger, reason=reason, rule=Rule.INPUT):
            msg = f"{trigger} is not allowed in {state}"
            raise RuntimeError(msg)
        if self.call.state == state:  # an internal transition: the same prompt, once more
            self.enter()

    async def run(self) -> CallRecord:
        call = self.call
        self.log.info("call started", caller=call.caller)
        self.emit(EventType.CALL_STARTED, caller=call.caller, started_at=call.started_at.isoformat())
        self.enter()
        while call.outcome is None:
            kind = STATES[call.state].kind
            if kind is Kind.ACTION:
                await self.engine.actions[call.state](self)
            elif kind is Kind.INFO:
                self.fire("next", now=self.clock.now())  # routing may follow: R8's notice is judged now
            else:
                await self.take_input(kind)
        await self.finish()
        return self.record

    async def take_input(self, kind: Kind) -> None:
        got = await self.caller.next_input(NO_INPUT_TIMEOUT)
        call = self.call
        if isinstance(got, HangUp):
            self.fire("hangup")
        elif isinstance(got, NoInput):
            self.retry("no_input", "no_input", Reason.NO_INPUT)
        elif got.key == "*":
            self.fire("replay")
            self.enter()
        elif kind is Kind.MENU:
            self.press_menu(got)
        elif got.key == "#":
            self.submit_digits()
        else:
            call.digits += got.key

    def press_menu(self, got: Key) -> None:
        trigger = STATES[self.call.state].options.get(got.key)
        if trigger is None or not self.fire(trigger, key=got.key):
            self.retry("no_match", "no_match", Reason.NO_MATCH)

    def submit_digits(self) -> None:
        call = self.call
        assert call.method is not None  # noqa: S101 - digit states are entered only after a method
        wrong = rules.check_length(call.method, call.digits)
        if wrong is not None:
            self.decide(wrong)
            self.retry("no_match", "wrong_length", Reason.WRONG_LENGTH)
            return
        self.fire("submit")

    async def finish(self) -> None:
        call = self.call
        duration = (self.clock.now() - call.started_at).total_seconds()
        if call.state == "routed":
            self.emit(
                EventType.CALL_ROUTED,
                queue=call.queue,
                priority=call.priority,
                ticket=call.ticket_id,
                rule=call.rule,
                english_only=call.english_only,
            )
        elif call.state == "sales":
            call.queue = SALES_QUEUE
            self.emit(EventType.CALL_ROUTED, queue=SALES_QUEUE, priority=None, ticket=None, rule=Rule.R1)
        elif call.state == "fallback":
            self.emit(
                EventType.CALL_FALLBACK,
                reason=call.reason,
                rule=call.rule,
                offered=fallback.offered(),
            )
        self.emit(
            EventType.CALL_ENDED,
            outcome=call.outcome,
            reason=call.reason,
            rule=call.rule,
            duration_s=round(duration, 3),
            path=list(call.path),
        )
        await self.flush()
        self.log.info("call ended", outcome=call.outcome, reason=call.reason, rule=call.rule)


async def _locked_until(run: _Run, now: datetime) -> datetime | None:
    """When the caller's number stops being locked out, or ``None`` when it is not."""
    failures = await run.engine.directory.failures(run.call.caller, lockout.counted_since(now))
    return lockout.locked_until(failures, now)


def _refuse_locked(run: _Run, until: datetime, trigger: str) -> None:
    """A locked-out number goes to the fallback, without a lookup."""
    refused = lockout.refuses(run.call.caller, until)
    run.decide(refused)
    run.play("locked_out")
    run.fire(trigger, reason=refused.reason, rule=refused.rule)


async def _lockout_check(run: _Run) -> None:
    """A locked-out number goes straight to the fallback, before the method menu."""
    until = await _locked_until(run, run.clock.now())
    if until is None:
        run.fire("clear")
    else:
        _refuse_locked(run, until, "locked")


async def _lookup(run: _Run) -> tuple[Decision, Contract | None, Ticket | None]:
    """Find what the caller entered (one read) and apply R2-R6."""
    call, directory = run.call, run.engine.directory
    # Validity dates are calendar days at the support centre (US Eastern), whatever offset the
    # caller's clock is written in: the same instant is never "expired" in one zone only.
    today = run.clock.now().astimezone(US_EASTERN).date()
    digits = call.digits
    if call.method is Method.TICKET:
        found = await directory.find_ticket(digits)
        assert call.purpose is not None  # noqa: S101 - chosen before any entry
        decision = rules.authorize_ticket(digits, found, purpose=call.purpose, today=today)
        if found is None:
            return decision, None, None
        # The contract that qualified (R2 b may be another of the owner's): its hours and plan apply.
        return decision, found.contract(decision.contract_id), found.ticket
    if call.method is Method.SUPPORT_CODE:
        found_code = await directory.find_code(digits)
        code, contract, balance = found_code or (None, None, None)
        return rules.authorize_code(digits, code, contract, balance, today=today), contract, None
    found_key = await directory.find_key(digits)
    key, contract, balance = found_key or (None, None, None)
    return rules.authorize_key(digits, key, contract, balance, today=today), contract, None


async def _authorizing(run: _Run) -> None:
    """Look up the entry; grant, deny (with the lockout), or send out of hours to the fallback.

    Calls from one number authorize one at a time, the lockout read again inside: without that,
    calls placed at once from one number all pass the check before any failure is written, and
    every one of them reaches the directory (guessing in parallel).
    """
    call, now = run.call, run.clock.now()
    async with run.engine.one_caller_at_a_time(call.caller):
        until = await _locked_until(run, now)
        if until is not None:
            call.digits = ""
            _refuse_locked(run, until, "lock")
            return
        decision, contract, ticket = await _lookup(run)
        call.digits = ""
        run.decide(decision)
        assert call.method is not None  # noqa: S101 - set when the entry state was chosen
        common = {"method": call.method, "caller_kind": call.kind, "purpose": call.purpose, "rule": decision.rule}
        if not decision.granted:
            await _deny(run, decision, now, common)  # the failure is committed before the next call looks
            return
    assert contract is not None  # noqa: S101 - a grant always names its contract
    hours = rules.check_hours(decision, contract, now)
    if not hours.granted:
        run.decide(hours)
        run.emit(
            EventType.AUTH_DENIED,
            **{**common, "rule": hours.rule},
            reason=hours.reason,
            attempt=call.attempts + 1,
            detail=hours.detail,
        )
        await run.flush()
        run.play("outside_hours", hours=contract.hours.describe())
        run.fire("after_hours", reason=hours.reason, rule=hours.rule)
        return
    call.plan = contract.plan
    if ticket is not None:
        call.severity = ticket.severity
        _set_route(call)
    run.emit(
        EventType.AUTH_GRANTED,
        **common,
        customer=decision.customer_id,
        contract=decision.contract_id,
        ticket=decision.ticket_id,
        deduct=decision.deduct,
        detail=decision.detail,
    )
    await run.flush()
    run.fire("grant", decision=decision, now=run.clock.now())  # a joined ticket is routed now (R8's notice)


async def _deny(run: _Run, decision: Decision, now: datetime, common: dict[str, Any]) -> None:
    """A failed authorization: counts for the lockout, and uses one of the call's attempts."""
    call, directory = run.call, run.engine.directory
    run.emit(
        EventType.AUTH_DENIED,
        **common,
        reason=decision.reason,
        attempt=call.attempts + 1,
        detail=decision.detail,
    )
    earlier = await directory.failures(call.caller, lockout.counted_since(now))
    until = lockout.after_failure(earlier, now)
    if until is not None:
        run.emit(
            EventType.AUTH_LOCKED_OUT,
            caller=call.caller,
            failures=lockout.MAX_FAILURES,
            until=until.isoformat(),
            rule=Rule.LOCKOUT,
        )
    await directory.record_failure(call.caller, now, run.take_pending())
    run.engine.notify()
    prompt = f"denied_{decision.reason}"
    run.play(prompt)
    if until is not None:
        # Checked before the attempts: when the lock's failure is also the call's last attempt, the
        # lockout is what the caller hears and the reason the call records.
        locked = lockout.locks(call.caller)
        run.decide(locked)
        run.play("locked_out")
        run.fire("lock", reason=locked.reason, rule=locked.rule)
        return
    if attempts.is_last(call.attempts):  # said before the move, which Call.last_attempt decides alike
        run.play("attempts_exhausted")
    run.fire("deny", decision=decision)


def _set_route(call: Call) -> None:
    """R9: the queue by caller kind and purpose; the priority by severity and plan."""
    assert call.kind is not None  # noqa: S101 - support calls only
    assert call.purpose is not None  # noqa: S101 - support calls only
    call.queue = queue_for(call.kind, call.purpose)
    call.priority = priority(call.severity or Severity.C, call.plan or Plan.STANDARD)


async def _creating_ticket(run: _Run) -> None:
    """A new ticket (R4, R5) and its ``ticket.created`` event, committed together."""
    call, granted, now = run.call, run.call.granted, run.clock.now()
    assert granted is not None  # noqa: S101 - after a grant
    assert granted.contract_id  # noqa: S101 - after a grant
    assert granted.customer_id  # noqa: S101 - after a grant
    assert call.purpose is not None  # noqa: S101 - chosen before
    assert call.severity is not None  # noqa: S101 - chosen before
    directory = run.engine.directory
    ticket = Ticket(
        id=await directory.next_ticket_id(),
        customer_id=granted.customer_id,
        contract_id=granted.contract_id,
        status=TicketStatus.OPEN,
        purpose=call.purpose,
        severity=call.severity,
    )
    _set_route(call)
    run.emit(
        EventType.TICKET_CREATED,
        ticket=ticket.id,
        method=call.method,
        caller_kind=call.kind,
        purpose=ticket.purpose,
        severity=ticket.severity,
        customer=ticket.customer_id,
        contract=ticket.contract_id,
        rule=granted.rule,
        deduct=granted.deduct,
    )
    # Shielded: a hang-up or cancellation must not split the ticket from its event.
    await asyncio.shield(directory.create_ticket(ticket, call_id=call.id, at=now, events=run.take_pending()))
    run.engine.notify()
    run.decide(rules.read_back(ticket, granted))
    run.fire("created", ticket_id=ticket.id)


class Engine:
    """Runs calls: one task each, all through the one shared machine."""

    def __init__(
        self,
        *,
        directory: DirectoryStorage,
        source: str,
        on_events: Callable[[], None] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        """``source`` names this IVR instance in every event; ``on_events`` wakes the publisher.

        ``observers`` (and any appended to :attr:`observers` later) see every call as it happens.
        """
        self.directory = directory
        self.source = source
        self._on_events = on_events
        self.observers = list(observers)
        self._callers: dict[str, tuple[asyncio.Lock, int]] = {}  # numbers authorizing now
        self.actions: dict[str, Callable[[_Run], Awaitable[None]]] = {
            "lockout_check": _lockout_check,
            "authorizing": _authorizing,
            "creating_ticket": _creating_ticket,
        }

    @contextlib.asynccontextmanager
    async def one_caller_at_a_time(self, number: str) -> AsyncIterator[None]:
        """Hold the authorization step for ``number``; other numbers never wait on it.

        Within this process an asyncio lock queues the number's calls, so each holds the store's
        lock (:meth:`~ivr.directory.storage.DirectoryStorage.caller_lock`, which other IVR
        processes on the same store also take) only when its turn has come.
        """
        lock, users = self._callers.get(number, (asyncio.Lock(), 0))
        self._callers[number] = (lock, users + 1)
        try:
            async with lock, self.directory.caller_lock(number):
                yield
        finally:
            lock, users = self._callers[number]
            if users == 1:
                del self._callers[number]
            else:
                self._callers[number] = (lock, users - 1)

    def notify(self) -> None:
        """New rows are in the outbox."""
        if self._on_events:
            self._on_events()

    async def run_call(
        self,
        caller: Caller,
        *,
        clock: Clock,
        number: str,
        call_id: str | None = None,
    ) -> CallRecord:
        """Run one call to its final state and return what it produced.

        ``number`` is put in E.164 first, so the lockout, the events and the traces see one line
        as one number whichever front end wrote it; one that is no telephone number is refused
        with :class:`~ivr.phone.InvalidNumberError` before the call starts.
        """
        call = Call(id=call_id or uuid.uuid4().hex[:12], caller=phone.normalize(number), started_at=clock.now())
        with structlog.contextvars.bound_contextvars(call_id=call.id):
            return await _Run(self, call, caller, clock).run()
