"""Coverage items come from the tables (flow rows, rule outcomes, counters), and a call's rows count as reached."""

from __future__ import annotations

from datetime import UTC, datetime

from ivr.auth.attempts import MAX_ATTEMPTS
from ivr.auth.decisions import Decision, Reason, Rule
from ivr.replay.coverage import CATEGORIES, Coverage, attempt_item, counter_item, transition_label
from ivr.replay.outcomes import rule_outcomes
from ivr.states.call import MAX_FAILURES, Call
from ivr.states.flow import FLOW, STATES, TRANSITIONS, Kind

INPUT_STATES = [n for n, s in STATES.items() if s.kind in (Kind.MENU, Kind.DIGITS)]


def fresh() -> Call:
    """A call at the main menu."""
    return Call(id="c", caller="+15550000000", started_at=datetime(2026, 11, 17, 15, tzinfo=UTC))


def test_every_row_and_state_is_an_item():
    """Transitions are the flow table's rows (conditions included) and states its states, nothing else."""
    coverage = Coverage()
    assert coverage.category("states").items == tuple(STATES)
    transitions = coverage.category("transitions").items
    assert len(transitions) == len(TRANSITIONS)
    assert "#12 grant [needs_new_ticket]: authorizing -> severity" in transitions
    assert transition_label(len(TRANSITIONS) - 1).endswith("-> abandoned")


def test_counters_are_each_failure_count_at_each_input_state_and_each_attempt():
    """No-input and no-match 1..3 at every menu and digit prompt, and authorization attempts 1..3."""
    counters = set(Coverage().category("counters").items)
    expected = {
        counter_item(state, trigger, n)
        for state in INPUT_STATES
        for trigger in ("no_input", "no_match")
        for n in range(1, MAX_FAILURES + 1)
    } | {attempt_item(n) for n in range(1, MAX_ATTEMPTS + 1)}
    assert counters == expected


def test_outcomes_hold_every_reason_a_decision_can_carry():
    """Running the rules yields every denial reason except the three that only end a call (input, attempts)."""
    outcomes = rule_outcomes()
    reasons = {o.result for o in outcomes} - {"granted"}
    call_endings = {Reason.ATTEMPTS_EXHAUSTED, Reason.NO_INPUT, Reason.NO_MATCH}
    assert reasons == {str(r) for r in Reason} - {str(r) for r in call_endings}
    granted = {o.rule for o in outcomes if o.result == "granted"}
    assert granted == {"R2", "R3", "R4", "R5", "R6", "R10"}
    assert "R2 denied ticket_closed" in {o.label for o in outcomes}


def test_a_call_reaches_the_rows_it_fired_and_counts_failures_in_a_row():
    """Fired rows become transitions; failures count up per prompt and restart when the state changes."""
    call = fresh()
    for trigger in ("no_input", "no_match"):
        FLOW.events[trigger].trigger(call, reason=Reason.NO_INPUT, rule=Rule.INPUT)
    FLOW.events["choose_technical"].trigger(call)
    FLOW.events["no_input"].trigger(call, reason=Reason.NO_INPUT, rule=Rule.INPUT)
    call.decisions.append(Decision.deny(Rule.R2, Reason.TICKET_CLOSED, "closed"))
    coverage = Coverage()
    coverage.add(call)
    assert coverage.reached["counters"] == {
        "main_menu no_input 1",
        "main_menu no_match 2",
        "caller_kind no_input 1",
    }
    assert coverage.category("states").covered == {"main_menu", "caller_kind"}
    assert "#2 choose_technical: main_menu -> caller_kind" in coverage.category("transitions").covered
    assert coverage.category("outcomes").covered == {"R2 denied ticket_closed"}
    assert coverage.walked == {("main_menu", "caller_kind")}
    assert set(coverage.to_json()) == set(CATEGORIES)
