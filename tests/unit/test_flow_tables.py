"""The call flow's tables are consistent: states, triggers, menus, prompts and reachability."""

from __future__ import annotations

import string
from collections import deque

import pytest

from ivr.auth.decisions import Reason
from ivr.auth.model import CallerKind
from ivr.states.call import Call
from ivr.states.flow import FLOW, INITIAL, STATES, TRANSITIONS, Kind
from ivr.states.prompts import PROMPTS, render

FINAL = {n for n, s in STATES.items() if s.kind is Kind.FINAL}
LIVE = [n for n, s in STATES.items() if s.kind is not Kind.FINAL]
TRIGGERS = {t["trigger"] for t in TRANSITIONS}


def sources(row) -> list[str]:
    """A transition row's source states as a list."""
    return [row["source"]] if isinstance(row["source"], str) else list(row["source"])


def edges() -> dict[str, set[str]]:
    """Each state's possible next states (an internal transition stays put)."""
    out: dict[str, set[str]] = {n: set() for n in STATES}
    for row in TRANSITIONS:
        for src in sources(row):
            out[src].add(row["dest"] or src)
    return out


def reachable(start: str) -> set[str]:
    """Every state reachable from ``start``."""
    graph, seen, todo = edges(), {start}, deque([start])
    while todo:
        for nxt in graph[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_initial_state_is_declared():
    """The flow starts at a declared menu state."""
    assert STATES[INITIAL].kind is Kind.MENU


def test_state_names_match_their_keys():
    """``STATES`` is keyed by each spec's own name."""
    assert all(name == spec.name for name, spec in STATES.items())


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda r: f"{r['trigger']}")
def test_every_transition_names_declared_states(row):
    """Every source and destination in ``TRANSITIONS`` is a state of ``STATES``."""
    for src in sources(row):
        assert src in STATES
    assert row["dest"] is None or row["dest"] in STATES


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda r: f"{r['trigger']}")
def test_conditions_and_callbacks_exist_on_the_model(row):
    """Every condition and callback a row names is a method of ``Call``."""
    for key in ("conditions", "unless", "before", "after"):
        names = row.get(key, [])
        for name in [names] if isinstance(names, str) else names:
            assert callable(getattr(Call, name, None)), f"{row['trigger']}: {key} {name!r}"


def test_no_transition_leaves_a_final_state():
    """Final states are final: nothing leaves them."""
    for row in TRANSITIONS:
        assert not set(sources(row)) & FINAL, row


def test_every_state_is_reachable_from_the_start():
    """No state is dead code: each can be reached from the main menu."""
    assert reachable(INITIAL) == set(STATES)


@pytest.mark.parametrize("state", LIVE)
def test_every_non_final_state_can_reach_a_final_state(state):
    """From anywhere in the flow some path ends the call."""
    assert reachable(state) & FINAL


@pytest.mark.parametrize("state", LIVE)
def test_hangup_is_allowed_from_every_non_final_state(state):
    """A hang-up at any point ends the call: every live state has a ``hangup`` to ``abandoned``."""
    rows = [r for r in TRANSITIONS if r["trigger"] == "hangup" and state in sources(r)]
    assert [r["dest"] for r in rows] == ["abandoned"]
    assert state in FLOW.events["hangup"].transitions


@pytest.mark.parametrize("state", [n for n, s in STATES.items() if s.kind is Kind.MENU])
def test_every_menu_option_names_a_real_trigger_from_that_state(state):
    """Each menu key fires a trigger the machine knows, with a transition out of that very menu."""
    options = STATES[state].options
    assert options
    for key, trigger in options.items():
        assert key in string.digits
        assert trigger in TRIGGERS
        assert trigger in FLOW.events
        assert state in FLOW.events[trigger].transitions, f"{state}: {key} -> {trigger}"


@pytest.mark.parametrize("state", [n for n, s in STATES.items() if s.kind in (Kind.MENU, Kind.DIGITS)])
@pytest.mark.parametrize("trigger", ["no_input", "no_match", "replay"])
def test_input_states_handle_retries(state, trigger):
    """Every state waiting for the caller handles no-input, no-match and ``*``."""
    assert state in FLOW.events[trigger].transitions


@pytest.mark.parametrize("state", [n for n, s in STATES.items() if s.kind is Kind.DIGITS])
def test_digit_states_submit_to_authorizing(state):
    """Digits ended by ``#`` go to the lookup."""
    assert [t.dest for t in FLOW.events["submit"].transitions[state]] == ["authorizing"]


@pytest.mark.parametrize("state", [n for n, s in STATES.items() if s.kind is Kind.INFO])
def test_info_states_move_on_by_next(state):
    """An info state plays its prompt and moves on by ``next``."""
    assert state in FLOW.events["next"].transitions


def prompt_names() -> list[str]:
    """Every prompt name a state can play, with ``{kind}`` filled for both caller kinds."""
    names = []
    for spec in STATES.values():
        if spec.prompt is None:
            continue
        names.extend(sorted({spec.prompt.format(kind=k.value) for k in CallerKind}))
    return names


@pytest.mark.parametrize("name", prompt_names())
def test_every_state_prompt_exists(name):
    """Every prompt a state plays is in ``PROMPTS``."""
    assert name in PROMPTS


@pytest.mark.parametrize("state", [n for n, s in STATES.items() if s.kind in (Kind.MENU, Kind.DIGITS, Kind.INFO)])
def test_states_that_wait_or_inform_have_a_prompt(state):
    """A caller never waits at a state that said nothing."""
    assert STATES[state].prompt


@pytest.mark.parametrize(
    "reason",
    [
        Reason.UNKNOWN_TICKET,
        Reason.TICKET_CLOSED,
        Reason.UNKNOWN_CODE,
        Reason.UNKNOWN_KEY,
        Reason.CONTRACT_EXPIRED,
        Reason.CONTRACT_NOT_STARTED,
        Reason.NO_PHONE_SUPPORT,
        Reason.NO_INCIDENTS,
        Reason.PRODUCT_NOT_ELIGIBLE,
    ],
)
def test_every_denial_reason_has_its_prompt(reason):
    """The engine plays ``denied_<reason>`` for a lookup's denial: each such prompt exists."""
    assert f"denied_{reason}" in PROMPTS


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_every_prompt_renders(name):
    """Every prompt renders with the context the engine provides."""
    text = render(name, hours="Monday to Friday", ticket_spoken="2 0 0 0 0 0 1", queue="sales")
    assert text
    assert "{" not in text
