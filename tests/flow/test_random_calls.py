"""Any sequence of keys, silences and hang-ups ends the call in a final state, cleanly and in bounded time."""

from __future__ import annotations

import asyncio
import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ivr.bootstrap import build_system
from ivr.callers import HANGUP, KEYS, Press, ScriptedCaller, Silence
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.engine import NO_INPUT_TIMEOUT
from ivr.events import EventType
from ivr.states.call import MAX_FAILURES
from tests.conftest import DEFAULT_WORLD_PATH

WORLD = load_world(DEFAULT_WORLD_PATH)
FINAL = {"routed", "sales", "fallback", "abandoned"}
START = datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
#: Entries that mean something in the default world, so random calls reach the deep states too.
MEANINGFUL = ["1234500001#", "1234500006#", "1234500005#", "40000002#", "40000001#", "1000001#", "1000002#", "1000003#"]
SECRETS = [m.rstrip("#") for m in MEANINGFUL if len(m) > 8]

STEP = st.one_of(
    st.builds(Press, st.sampled_from(sorted(KEYS))),
    st.builds(Press, st.text(alphabet=sorted(KEYS), min_size=1, max_size=12)),
    st.builds(Press, st.sampled_from(MEANINGFUL)),
    st.builds(Silence, st.floats(min_value=0.5, max_value=12, allow_nan=False)),
)


#: Menu choices to start from, so random steps also land in the entry and severity states.
PREFIXES = [
    (),
    ("2", "1"),
    ("3", "2"),
    ("2", "1", "2"),
    ("2", "2", "3"),
    ("2", "1", "2", "1234500001#"),
    ("2", "1", "2", "1234500006#"),
    ("2", "1", "2", "1234500005#"),
    ("2", "2", "3", "40000002#"),
    ("2", "2", "3", "40000001#"),
    ("2", "1", "1", "1000001#"),
    ("2", "1", "1", "1000002#"),
    ("3", "2", "1", "1000003#"),
]


@st.composite
def scripts(draw):
    """Maybe a menu prefix (with an entry), up to 25 random steps, and in one script of three a hang-up."""
    steps = [Press(k) for k in draw(st.sampled_from(PREFIXES))] + draw(st.lists(STEP, max_size=25))
    if draw(st.integers(0, 2)) == 0:
        steps.insert(draw(st.integers(0, len(steps))), HANGUP)
    return steps


class CountingCaller(ScriptedCaller):
    """A scripted caller that counts the inputs the engine asked for."""

    def __init__(self, steps, *, clock):
        """Follow ``steps``; start counting at zero."""
        super().__init__(steps, clock=clock)
        self.inputs = 0

    async def next_input(self, timeout):
        """The next scripted input, counted."""
        self.inputs += 1
        return await super().next_input(timeout)


def input_bound(steps) -> int:
    """Inputs a script can give: its keys, one no-input per full timeout of silence, 3 more no-inputs, a hang-up."""
    keys = sum(len(s.keys) for s in steps if isinstance(s, Press))
    timeouts = sum(math.ceil(s.seconds / NO_INPUT_TIMEOUT) for s in steps if isinstance(s, Silence))
    return keys + timeouts + MAX_FAILURES + 1


async def one_call(steps):
    """Run ``steps`` on a fresh IVR and ledger; return the record, the input count and the leftover tasks."""
    before = asyncio.all_tasks()
    with tempfile.TemporaryDirectory(prefix="ivr-hyp-") as tmp:
        system = await build_system(world=WORLD, workdir=Path(tmp))
        try:
            clock = VirtualClock(start=START)
            caller = CountingCaller(steps, clock=clock)
            record = await asyncio.wait_for(
                system.engine.run_call(caller, clock=clock, number="+15550100001", call_id="random"),
                timeout=10,
            )
            await system.settle()
            report = await system.ledger.verify()
        finally:
            await system.close()
    await asyncio.sleep(0)
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    return record, caller.inputs, report, leftover


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scripts())
def test_every_random_call_ends_cleanly(steps):
    """Random keys, silences and hang-ups: a final state within a bounded number of inputs, no error, no task left."""
    record, inputs, report, leftover = asyncio.run(one_call(steps))
    call = record.call
    event(f"outcome: {call.outcome}")
    event(
        f"deepest: {'ticket' if 'creating_ticket' in call.path else 'auth' if 'authorizing' in call.path else 'menus'}"
    )
    assert call.outcome in FINAL
    assert call.path[-1] == call.outcome
    assert inputs <= input_bound(steps)
    assert leftover == set()
    events = record.events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == EventType.CALL_ENDED
    assert report.ok, report.problems
    text = "\n".join([*(e.to_json() for e in events), *(h.text for h in record.heard)])
    for secret in SECRETS:
        assert secret not in text
