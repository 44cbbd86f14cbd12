"""The console's small parts: the shifted clock, message parsing, and a walk written as a scenario."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ivr.callers import HANGUP, NO_INPUT, Key, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.replay.runner import run_scenario
from ivr.replay.scenario import load_scenario
from ivr.web.clock import ShiftedClock
from ivr.web.messages import BadMessageError, Control, KeyPress, OpenScenario, Reset, StartCall, parse
from ivr.web.recording import RecordingCaller, Taken
from ivr.web.walk import Step, Walk, scenario_yaml, steps_of
from tests.conftest import TUESDAY_10AM, steps_from

EASTERN = timezone(timedelta(hours=-5))


def taken(*items):
    """Inputs as the engine took them: ("main_menu", "2") a key, ("x", None) a no-input, ("x", "hangup")."""
    out = []
    for state, key in items:
        got = NO_INPUT if key is None else HANGUP if key == "hangup" else Key(key)
        out.append(Taken(got, state))
    return out


async def test_shifted_clock_starts_at_the_chosen_instant_and_runs_in_real_time():
    """The clock reads the chosen instant (in its zone) at creation, then moves with real time."""
    clock = ShiftedClock(start=TUESDAY_10AM)
    first = clock.now()
    assert first.utcoffset() == timedelta(hours=-5)
    assert timedelta(0) <= first - TUESDAY_10AM < timedelta(seconds=1)
    fired = asyncio.Event()
    clock.call_later(0.05, fired.set)
    await asyncio.wait_for(fired.wait(), 1)
    assert clock.now() - first >= timedelta(seconds=0.05)
    with pytest.raises(ValueError, match="timezone-aware"):
        ShiftedClock(start=datetime(2026, 11, 17, 10, 0))  # noqa: DTZ001 - the naive instant is the point


def test_parse_reads_each_command():
    """Each message type parses to its command; a naive `at` is read in the zone given (US Eastern by default)."""
    start = parse('{"type": "call", "persona": "sales", "at": "2026-11-21T10:00", "zone": "Europe/Berlin"}')
    assert isinstance(start, StartCall)
    assert start.at.utcoffset() == timedelta(hours=1)
    default = parse('{"type": "call", "persona": "sales", "at": "2026-11-17T10:00"}')
    assert isinstance(default, StartCall)
    assert default.at.astimezone(UTC) == TUESDAY_10AM.astimezone(UTC)
    assert parse('{"type": "key", "key": "#"}') == KeyPress(key="#")
    assert parse('{"type": "pause"}') == Control(action="pause")
    assert parse('{"type": "reset"}') == Reset()
    long_text = "name: x\n" + "#" * 10_000
    assert parse(json.dumps({"type": "open", "name": "a.yaml", "text": long_text})) == OpenScenario(
        name="a.yaml", text=long_text
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1]", "a message is a JSON object"),
        ('{"type": "call"}', "needs a 'persona'"),
        ('{"type": "call", "persona": "sales"}', "needs 'at'"),
        ('{"type": "key", "key": "12"}', "not a phone key"),
        ("x" * 200_001, "message too long"),
        ('{"type": "key", "key": "' + "1" * 5000 + '"}', "message too long"),  # only an open may be long
        ('{"type": "open", "name": "a.yaml"}', "an open needs the scenario file's 'name' and its 'text'"),
    ],
)
def test_parse_refuses_with_a_reason(text, expected):
    """A message the console cannot act on is refused with words a trainer can act on."""
    with pytest.raises(BadMessageError, match=expected):
        parse(text)


def test_steps_group_an_entry_and_keep_menu_keys_apart():
    """Digits up to `#` are one step; menu keys, `*`, no-inputs and a hang-up are steps of their own."""
    steps = steps_of(
        taken(
            ("main_menu", "2"),
            ("caller_kind", None),
            ("caller_kind", "1"),
            ("auth_method", "2"),
            ("code_entry", "1"),
            ("code_entry", "2"),
            ("code_entry", "*"),
            ("code_entry", "9"),
            ("code_entry", "#"),
            ("code_entry", "#"),
            ("severity", "7"),
            ("severity", "hangup"),
        )
    )
    assert steps == [
        Step("press", "2", "main_menu: choose_technical"),
        Step("silence", "5", "no input at caller_kind"),
        Step("press", "1", "caller_kind: choose_consumer"),
        Step("press", "2", "auth_method: choose_code"),
        Step("press", "12", "code_entry"),
        Step("press", "*", "code_entry: replay the prompt"),
        Step("press", "9#", "code_entry"),
        Step("press", "#", "code_entry"),
        Step("press", "7", "severity: not an option"),
        Step("hangup", "", "hang up at severity"),
    ]


class Watch:
    """An engine observer keeping the call it sees, so the recorder can tell its state."""

    call = None

    def on_transition(self, call, *_):
        """Keep the call."""
        self.call = call

    def on_prompt(self, call, *_):
        """Keep the call."""
        self.call = call

    def on_decision(self, call, *_):
        """Keep the call."""
        self.call = call

    def on_event(self, call, *_):
        """Keep the call."""
        self.call = call


async def test_a_written_walk_replays_as_it_went(system, world, tmp_path):
    """A recorded call written as a scenario parses, and replayed on a fresh world meets every expectation."""
    watch = Watch()
    system.engine.observers.append(watch)
    clock = VirtualClock(start=TUESDAY_10AM)
    script = ScriptedCaller(steps_from(["2", "1", 5, "2", "1234500001#", "4"]), clock=clock)
    recorder = RecordingCaller(live=script, state=lambda: watch.call.state if watch.call else "main_menu")
    record = await system.engine.run_call(recorder, clock=clock, number="+15550100001", call_id="walked")
    await system.settle()
    walk = Walk(
        name='a "quoted" name: with colons',
        description="Anna: a code, after one silence",
        at=TUESDAY_10AM,
        fixture="default",
        caller="+15550100001",
        taken=recorder.taken,
        call=record.call,
        events=[e.type for e in record.events],
        deducted=await system.ledger.deducted(),
    )
    folder = tmp_path / "scenarios"
    folder.mkdir()
    path = folder / "walk.yaml"
    text = scenario_yaml(walk)
    path.write_text(text, encoding="utf-8")
    assert '  - press: "1234500001#" # code_entry' in text
    assert "  - silence: 5           # no input at auth_method" in text
    scenario = load_scenario(path)
    assert scenario.name == 'a "quoted" name: with colons'
    assert scenario.at == TUESDAY_10AM
    (spec,) = scenario.calls
    assert (spec.expect.outcome, spec.expect.rule, spec.expect.priority) == ("routed", "R4", 1)
    assert spec.expect.deducted == {"K-ANNA-STD": 1}
    assert spec.expect.states == tuple(record.call.path)
    (tmp_path / "replay").mkdir()
    result = await run_scenario(scenario, world, workdir=tmp_path / "replay")
    assert result.passed, [c.failures for c in result.calls]
