"""One call: the data the flow reads and writes, and the conditions and callbacks the tables name.

A ``Call`` is the model of the shared machine in `ivr.states.flow`. It does no I/O: the engine
fills in what lookups found (through trigger arguments) and the callbacks here only record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ivr.auth.attempts import is_last
from ivr.auth.decisions import Decision, Reason, Rule
from ivr.auth.model import CallerKind, Method, Plan, Purpose, Severity
from ivr.auth.routing import english_only
from ivr.states.flow import INITIAL, STATES, Kind

if TYPE_CHECKING:
    from datetime import datetime

    from transitions import EventData

__all__ = ["MAX_FAILURES", "Call", "Outcome"]

#: Failures in a row at one prompt (no-input, no-match); the third goes to the fallback.
MAX_FAILURES: Final = 3

_SEVERITY_KEYS: Final = {"1": Severity.A, "2": Severity.B, "3": Severity.C, "4": Severity.D}
_METHODS: Final = {"choose_ticket": Method.TICKET, "choose_code": Method.SUPPORT_CODE, "choose_key": Method.LICENSE_KEY}

Outcome = str  # the final state's name: routed, sales, fallback, abandoned


@dataclass(slots=True, eq=False)
class Call:
    """The state and history of one call, from the first prompt to its final state."""

    id: str
    caller: str
    started_at: datetime
    state: str = INITIAL
    purpose: Purpose | None = None
    kind: CallerKind | None = None
    method: Method | None = None
    digits: str = ""
    failures: int = 0
    attempts: int = 0
    severity: Severity | None = None
    plan: Plan | None = None
    granted: Decision | None = None
    ticket_id: str | None = None
    english_only: bool = False
    queue: str | None = None
    priority: int | None = None
    reason: Reason | None = None
    rule: Rule | None = None
    path: list[str] = field(default_factory=lambda: [INITIAL])
    prompts: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: Every transition taken, internal ones included, as (trigger, source, dest or ``None``):
    #: which row of the flow table fired, for replay's coverage and baselines.
    fired: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome | None:
        """The final state's name once the call is over, else ``None``."""
        return self.state if STATES[self.state].kind is Kind.FINAL else None

    # -- conditions -------------------------------------------------------------------------

    def is_business(self, _: EventData) -> bool:
        """License keys are for business callers only (R5)."""
        return self.kind is CallerKind.BUSINESS

    def needs_new_ticket(self, event: EventData) -> bool:
        """A grant by code or key opens a ticket; a grant by ticket ID joins one (R2)."""
        decision: Decision = event.kwargs["decision"]
        return decision.ticket_id is None

    def needs_english_notice(self, event: EventData) -> bool:
        """Premier support out of business hours is in English only, said before routing (R8).

        Judged by the trigger that routes the call, at its ``now``: the moment of routing.
        """
        return self.plan is not None and english_only(self.plan, event.kwargs["now"])

    def last_attempt(self, _: EventData) -> bool:
        """Whether this denial uses the caller's last authorization attempt."""
        return is_last(self.attempts)

    def last_failure(self, _: EventData) -> bool:
        """Whether this no-input or no-match is the third in a row at this prompt."""
        return self.failures + 1 >= MAX_FAILURES

    # -- callbacks --------------------------------------------------------------------------

    def entered(self, event: EventData) -> None:
        """Every transition: record it and the path, and on a state change start the failure count afresh."""
        if event.transition is not None:
            self.fired.append((event.event.name, event.transition.source, event.transition.dest))
        if event.transition is not None and event.transition.dest is not None:
            self.path.append(self.state)
            self.failures = 0

    def set_sales(self, _: EventData) -> None:
        """R1: sales needs no authorization."""
        self.rule = Rule.R1

    def set_purpose(self, event: EventData) -> None:
        """Technical support or licensing, from the main menu."""
        self.purpose = Purpose.TECHNICAL if event.event.name == "choose_technical" else Purpose.LICENSING

    def set_kind(self, event: EventData) -> None:
        """Consumer or business, from the caller-kind menu."""
        self.kind = CallerKind.CONSUMER if event.event.name == "choose_consumer" else CallerKind.BUSINESS

    def set_method(self, event: EventData) -> None:
        """How the caller chose to authorize; the digit buffer starts empty."""
        self.method = _METHODS[event.event.name]
        self.digits = ""

    def set_granted(self, event: EventData) -> None:
        """Keep the grant: its rule decides the ticket and the deduction."""
        self.granted = event.kwargs["decision"]
        self.rule = self.granted.rule if self.granted else None
        self.ticket_id = self.granted.ticket_id if self.granted else None

    def set_english_only(self, _: EventData) -> None:
        """The caller is told phone support is in English only; the routed call says so (R8)."""
        self.english_only = True

    def count_attempt(self, _: EventData) -> None:
        """One authorization attempt used."""
        self.attempts += 1

    def set_exhausted(self, _: EventData) -> None:
        """The third failed attempt sends the call to the fallback."""
        self.reason, self.rule = Reason.ATTEMPTS_EXHAUSTED, Rule.ATTEMPTS

    def set_fallback(self, event: EventData) -> None:
        """Why the call goes to the fallback, as the engine found it."""
        self.reason, self.rule = event.kwargs["reason"], event.kwargs["rule"]

    def count_failure(self, _: EventData) -> None:
        """One more no-input or no-match at this prompt."""
        self.failures += 1
        self.digits = ""

    def start_over(self, _: EventData) -> None:
        """``*``: an accepted input, so the failure row is broken; a half-typed entry is thrown away."""
        self.failures = 0
        self.digits = ""

    def set_severity(self, event: EventData) -> None:
        """R9: the key pressed at the severity menu."""
        self.severity = _SEVERITY_KEYS[event.kwargs["key"]]

    def set_ticket(self, event: EventData) -> None:
        """The new ticket's ID, to read back (R10)."""
        self.ticket_id = event.kwargs["ticket_id"]

    def set_hangup(self, _: EventData) -> None:
        """The caller hung up; the call ends where it stands."""
        self.rule = Rule.HANGUP
