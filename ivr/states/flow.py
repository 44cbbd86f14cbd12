"""The call flow as data: every state, trigger and condition in two tables.

The engine (`ivr.engine`) reads ``STATES`` to know what a state waits for (a menu key, digits,
an action of its own, nothing); the shared machine below is built from ``TRANSITIONS``; the
diagram is drawn from the same two tables.

Design (measured on this kind of machine, 2 cores): one shared ``AsyncMachine`` runs ~13,000
transitions/s, a plain ``Machine`` ~88,000/s, a machine per call costs 2.6x the memory, and
``add_model`` scans the model list (~80 us per call at 1,000 live, ~480 us at 40,000). So the
flow is ONE process-wide synchronous ``Machine`` with no registered models: each call is a plain
:class:`~ivr.states.call.Call` and a trigger is fired through ``machine.events[name].trigger(call)``,
which reads and writes ``call.state`` directly. Nothing is added or removed per call (no scan,
no bound trigger methods per call), and the transitions never await: the async work (directory
lookups, the outbox) happens in the call's own task between transitions. Because each call's
inputs are consumed by its own task one at a time, there is no cross-call queue to get wrong
(``queued=True`` on a shared machine returns before the state changed; we need no queue at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from transitions import Machine

__all__ = [
    "FLOW",
    "INITIAL",
    "STATES",
    "TRANSITIONS",
    "Kind",
    "StateSpec",
]


class Kind(StrEnum):
    """What a state waits for."""

    MENU = "menu"  # one key from ``options``; ``*`` replays
    DIGITS = "digits"  # digits ended by ``#``; ``*`` clears and replays
    ACTION = "action"  # the engine does I/O, then fires the outcome
    INFO = "info"  # a prompt is played, then ``next``
    FINAL = "final"  # the call is over


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One state: what it waits for, the prompt played on entry, and for menus the keys it takes."""

    name: str
    kind: Kind
    prompt: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    doc: str = ""


INITIAL: Final = "main_menu"

STATES: Final[dict[str, StateSpec]] = {
    s.name: s
    for s in (
        StateSpec(
            "main_menu",
            Kind.MENU,
            "main_menu",
            {"1": "choose_sales", "2": "choose_technical", "3": "choose_licensing"},
            "What the call is about.",
        ),
        StateSpec(
            "caller_kind",
            Kind.MENU,
            "caller_kind",
            {"1": "choose_consumer", "2": "choose_business"},
            "Consumer or business caller.",
        ),
        StateSpec("lockout_check", Kind.ACTION, doc="Is this caller number locked out of authorization?"),
        StateSpec(
            "auth_method",
            Kind.MENU,
            "auth_method_{kind}",
            {"1": "choose_ticket", "2": "choose_code", "3": "choose_key"},
            "Ticket ID, support code, or (business only) license key.",
        ),
        StateSpec("ticket_entry", Kind.DIGITS, "enter_ticket", doc="7-digit ticket ID, ended by #."),
        StateSpec("code_entry", Kind.DIGITS, "enter_code", doc="10-digit support code, ended by #."),
        StateSpec("key_entry", Kind.DIGITS, "enter_key", doc="8-digit license key, ended by #."),
        StateSpec("authorizing", Kind.ACTION, doc="Look the entry up and apply R2-R5, R8 and the lockout."),
        StateSpec(
            "severity",
            Kind.MENU,
            "severity",
            {"1": "choose_severity", "2": "choose_severity", "3": "choose_severity", "4": "choose_severity"},
            "Severity A-D of the new ticket (R9).",
        ),
        StateSpec("creating_ticket", Kind.ACTION, doc="Create the ticket and its event in one transaction."),
        StateSpec("case_number", Kind.INFO, "case_number", doc="Read the new ticket's ID back (R10)."),
        StateSpec("english_notice", Kind.INFO, "english_only", doc="Premier out of business hours: English only (R8)."),
        StateSpec("routed", Kind.FINAL, "connecting", doc="Put through to an agents' queue."),
        StateSpec("sales", Kind.FINAL, "connecting_sales", doc="Put through to online sales (R1)."),
        StateSpec("fallback", Kind.FINAL, "fallback_offer", doc="Offered web form, chat, self-service (R11)."),
        StateSpec("abandoned", Kind.FINAL, doc="The caller hung up."),
    )
}

_INPUT = [n for n, s in STATES.items() if s.kind in (Kind.MENU, Kind.DIGITS)]
_ENTRY = [n for n, s in STATES.items() if s.kind is Kind.DIGITS]
_LIVE = [n for n, s in STATES.items() if s.kind is not Kind.FINAL]

#: Each row: trigger, source(s), destination (``None``: internal, the state is not left), and the
#: model's conditions and callbacks by name. Rows for one trigger are tried in order; the first
#: whose conditions hold wins.
TRANSITIONS: Final[list[dict[str, Any]]] = [
    {"trigger": "choose_sales", "source": "main_menu", "dest": "sales", "before": "set_sales"},
    {"trigger": "choose_technical", "source": "main_menu", "dest": "caller_kind", "before": "set_purpose"},
    {"trigger": "choose_licensing", "source": "main_menu", "dest": "caller_kind", "before": "set_purpose"},
    {"trigger": "choose_consumer", "source": "caller_kind", "dest": "lockout_check", "before": "set_kind"},
    {"trigger": "choose_business", "source": "caller_kind", "dest": "lockout_check", "before": "set_kind"},
    {"trigger": "clear", "source": "lockout_check", "dest": "auth_method"},
    {"trigger": "locked", "source": "lockout_check", "dest": "fallback", "before": "set_fallback"},
    {"trigger": "choose_ticket", "source": "auth_method", "dest": "ticket_entry", "before": "set_method"},
    {"trigger": "choose_code", "source": "auth_method", "dest": "code_entry", "before": "set_method"},
    {
        "trigger": "choose_key",
        "source": "auth_method",
        "dest": "key_entry",
        "conditions": "is_business",
        "before": "set_method",
    },
    {"trigger": "submit", "source": _ENTRY, "dest": "authorizing"},
    {
        "trigger": "grant",
        "source": "authorizing",
        "dest": "severity",
        "conditions": "needs_new_ticket",
        "before": "set_granted",
    },
    {
        "trigger": "grant",
        "source": "authorizing",
        "dest": "english_notice",
        "conditions": "needs_english_notice",
        "before": ["set_granted", "set_english_only"],
    },
    {"trigger": "grant", "source": "authorizing", "dest": "routed", "before": "set_granted"},
    {
        "trigger": "deny",
        "source": "authorizing",
        "dest": "fallback",
        "conditions": "last_attempt",
        "before": ["count_attempt", "set_exhausted"],
    },
    {"trigger": "deny", "source": "authorizing", "dest": "auth_method", "before": "count_attempt"},
    {"trigger": "lock", "source": "authorizing", "dest": "fallback", "before": "set_fallback"},
    {"trigger": "after_hours", "source": "authorizing", "dest": "fallback", "before": "set_fallback"},
    {"trigger": "choose_severity", "source": "severity", "dest": "creating_ticket", "before": "set_severity"},
    {"trigger": "created", "source": "creating_ticket", "dest": "case_number", "before": "set_ticket"},
    {
        "trigger": "next",
        "source": "case_number",
        "dest": "english_notice",
        "conditions": "needs_english_notice",
        "before": "set_english_only",
    },
    {"trigger": "next", "source": "case_number", "dest": "routed"},
    {"trigger": "next", "source": "english_notice", "dest": "routed"},
    {
        "trigger": "no_input",
        "source": _INPUT,
        "dest": "fallback",
        "conditions": "last_failure",
        "before": "set_fallback",
    },
    {"trigger": "no_input", "source": _INPUT, "dest": None, "before": "count_failure"},
    {
        "trigger": "no_match",
        "source": _INPUT,
        "dest": "fallback",
        "conditions": "last_failure",
        "before": "set_fallback",
    },
    {"trigger": "no_match", "source": _INPUT, "dest": None, "before": "count_failure"},
    {"trigger": "replay", "source": _INPUT, "dest": None, "before": "start_over"},
    {"trigger": "hangup", "source": _LIVE, "dest": "abandoned", "before": "set_hangup"},
]

#: The one machine every call runs through (see the module docstring for why one, and why sync).
FLOW: Final = Machine(
    model=None,
    states=list(STATES),
    transitions=TRANSITIONS,
    initial=INITIAL,
    auto_transitions=False,
    send_event=True,
    after_state_change="entered",
)
