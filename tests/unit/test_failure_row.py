"""The failure row at one prompt, on the call model alone: consecutive failures, broken by ``*``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.auth.decisions import Reason, Rule
from ivr.states.call import Call
from ivr.states.flow import FLOW


def fire(call: Call, trigger: str) -> None:
    """Fire ``trigger`` as the engine does for a no-match or a ``*``."""
    assert FLOW.events[trigger].trigger(call, reason=Reason.NO_MATCH, rule=Rule.INPUT)


def new_call(state: str = "main_menu") -> Call:
    """A call waiting at ``state``."""
    return Call(id="c", caller="+15550100001", started_at=datetime(2026, 11, 17, 15, tzinfo=UTC), state=state)


def test_three_failures_in_a_row_go_to_the_fallback():
    """No-match three times at one prompt: the third goes to the fallback."""
    call = new_call()
    for _ in range(3):
        fire(call, "no_match")
    assert (call.state, call.reason, call.rule) == ("fallback", Reason.NO_MATCH, Rule.INPUT)


@pytest.mark.parametrize("state", ["main_menu", "ticket_entry"])
def test_star_breaks_the_row_and_the_count_starts_over(state):
    """No-match, no-match, ``*``, no-match, no-match stays at the prompt; only a third after ``*`` ends it."""
    call = new_call(state)
    fire(call, "no_match")
    fire(call, "no_match")
    fire(call, "replay")
    assert call.failures == 0
    fire(call, "no_match")
    fire(call, "no_match")
    assert (call.state, call.failures) == (state, 2)
    fire(call, "no_match")
    assert call.state == "fallback"


def test_star_throws_away_a_half_typed_entry():
    """``*`` at a digit prompt clears what was typed."""
    call = new_call("code_entry")
    call.digits = "12345"
    fire(call, "replay")
    assert call.digits == ""
