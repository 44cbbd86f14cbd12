"""The decision panel's entries: each branch of a call with the rule that took it and why.

Trainers show new agents *why* a caller was sent where, so every entry names its rule (R-number
and :attr:`~ivr.auth.decisions.Rule.sentence`) and the data that decided it. Most entries are the
rules' own :class:`~ivr.auth.decisions.Decision` objects as the engine made them (their ``detail``
is already masked). A few branches are taken by the flow without a lookup — sales (R1), the
English-only notice (R8), the route and its priority (R9), the fallback (R11), a no-input or
no-match, a hang-up — and get an entry here, built from the call's own fields at that moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ivr.auth.decisions import R8_NOTICE, Decision, Rule

if TYPE_CHECKING:
    from ivr.states.call import Call

__all__ = ["Entry", "branch_entry", "decision_entry", "retry_entry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One line of the panel: where, which rule (with its sentence), the verdict and the data."""

    state: str
    rule: str
    sentence: str
    granted: bool | None  # None: a branch of the flow, not a grant or a denial
    reason: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The entry as the page receives it."""
        return asdict(self)


def decision_entry(call: Call, decision: Decision) -> Entry:
    """A rule's own decision, as made (R2-R5, R8 hours, R10, lockout, a wrong length)."""
    return Entry(
        state=call.state,
        rule=decision.rule.value,
        sentence=decision.rule.sentence,
        granted=decision.granted,
        reason=decision.reason.value if decision.reason else None,
        detail=decision.detail,
    )


def _branch(call: Call, rule: Rule, detail: str, *, sentence: str | None = None) -> Entry:
    reason = call.reason.value if call.reason else None
    return Entry(
        state=call.state,
        rule=rule.value,
        sentence=sentence or rule.sentence,
        granted=None,
        reason=reason,
        detail=detail,
    )


def branch_entry(call: Call, source: str, dest: str) -> Entry | None:
    """The entry for a branch the flow takes without a rule's decision, or ``None`` for the others."""
    if dest == "sales":
        return _branch(call, Rule.R1, "online sales chosen at the main menu: no authorization, nothing deducted")
    if dest == "english_notice":
        return _branch(
            call,
            Rule.R8,
            f"{call.plan} plan routed outside weekday office hours (US Eastern): English only",
            sentence=R8_NOTICE,
        )
    if dest == "routed":
        return _branch(
            call,
            Rule.R9,
            f"queue {call.queue}, priority {call.priority}: severity {call.severity} on the {call.plan} plan",
        )
    if dest == "fallback":
        rule = call.rule or Rule.R11
        why = f"{call.reason} under {rule}" if call.reason else str(rule)
        return _branch(call, Rule.R11, f"sent to the fallback ({why}): offered the web form, chat and self-service")
    if dest == "abandoned":
        return _branch(call, Rule.HANGUP, f"the caller hung up at {source}")
    return None


def retry_entry(call: Call, prompt: str) -> Entry | None:
    """A no-input or no-match at a prompt: which failure in a row it is (the third goes to the fallback)."""
    what = {"no_input": "no input for 5 s", "no_match": "a key this prompt does not accept"}.get(prompt)
    if what is None:
        return None
    return _branch(call, Rule.INPUT, f"{what} at {call.state}: failure {call.failures + 1} of 3 in a row")
