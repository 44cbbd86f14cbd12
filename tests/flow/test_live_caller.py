"""The live caller on the real clock: keys as they come, a pausable countdown, and the Silence button."""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.callers import HANGUP, NO_INPUT, Key, LiveCaller
from ivr.clock import RealClock

TIMEOUT = 0.05


async def settle_tasks(rounds: int = 5) -> None:
    """Let freshly created tasks take their first steps."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
def caller():
    """A live caller on the real clock."""
    return LiveCaller(clock=RealClock())


async def test_a_key_pressed_before_the_timeout_is_returned(caller):
    """A key already pressed is the next input, at once."""
    caller.press("7")
    assert await caller.next_input(TIMEOUT) == Key("7")


async def test_nothing_pressed_is_a_no_input_after_the_timeout(caller):
    """With the countdown running and no key, the timeout gives ``NO_INPUT``."""
    started = time.monotonic()
    assert await caller.next_input(TIMEOUT) is NO_INPUT
    assert time.monotonic() - started >= TIMEOUT * 0.9


async def test_silence_fires_no_input_at_once(caller):
    """The trainer's Silence button gives ``NO_INPUT`` immediately, long before the timeout."""
    task = asyncio.ensure_future(caller.next_input(30))
    await settle_tasks()
    started = time.monotonic()
    caller.silence()
    assert await asyncio.wait_for(task, 1) is NO_INPUT
    assert time.monotonic() - started < 1


async def test_hang_up_is_delivered(caller):
    """A hang-up is an input like any other."""
    caller.hang_up()
    assert await caller.next_input(TIMEOUT) is HANGUP


def test_only_phone_keys_can_be_pressed(caller):
    """A character a phone does not have is refused."""
    with pytest.raises(ValueError, match="not a phone key"):
        caller.press("a")


async def test_pause_stops_the_countdown(caller):
    """While paused, no ``NO_INPUT`` fires however long it takes; a key still gets through."""
    task = asyncio.ensure_future(caller.next_input(TIMEOUT))
    await settle_tasks()
    caller.pause()
    await asyncio.sleep(TIMEOUT * 6)
    assert not task.done()
    caller.press("4")
    assert await asyncio.wait_for(task, 1) == Key("4")


async def test_pause_before_asking_stops_the_countdown(caller):
    """A countdown paused before the engine asks does not start until resumed."""
    caller.pause()
    task = asyncio.ensure_future(caller.next_input(TIMEOUT))
    await asyncio.sleep(TIMEOUT * 6)
    assert not task.done()
    caller.resume()
    assert await asyncio.wait_for(task, 1) is NO_INPUT


async def test_resume_restarts_the_countdown_from_its_full_length(caller):
    """After a resume the whole timeout runs again before ``NO_INPUT``."""
    task = asyncio.ensure_future(caller.next_input(TIMEOUT * 4))
    await asyncio.sleep(TIMEOUT * 3)
    caller.pause()
    await asyncio.sleep(TIMEOUT * 4)
    resumed_at = time.monotonic()
    caller.resume()
    assert await asyncio.wait_for(task, 2) is NO_INPUT
    assert time.monotonic() - resumed_at >= TIMEOUT * 4 * 0.9


async def test_a_key_arriving_as_the_timer_fires_is_delivered_after_the_no_input(caller):
    """When the timer and a key fall due together the timer wins, and the key is the next input, not lost."""
    task = asyncio.ensure_future(caller.next_input(TIMEOUT))
    await settle_tasks()
    assert caller.deadline is not None
    # Block the loop past the deadline, then press: the timer and the key are due in the same loop pass.
    time.sleep(TIMEOUT * 2)  # noqa: ASYNC251 - blocking on purpose, to make both due at one instant
    caller.press("9")
    assert await asyncio.wait_for(task, 1) is NO_INPUT
    assert await asyncio.wait_for(caller.next_input(TIMEOUT), 1) == Key("9")


async def test_keys_keep_their_order(caller):
    """Keys pressed in a burst come out in the order pressed."""
    for key in "12#*":
        caller.press(key)
    assert [await caller.next_input(TIMEOUT) for _ in range(4)] == [Key("1"), Key("2"), Key("#"), Key("*")]


class TimersKept(RealClock):
    """The real clock, keeping every countdown it schedules so a test can see which are still pending."""

    def __init__(self) -> None:
        """No countdown yet."""
        self.timers: list[asyncio.TimerHandle] = []

    def call_later(self, seconds, callback):
        """Schedule on the loop as the real clock does, and keep the handle."""
        timer = super().call_later(seconds, callback)
        self.timers.append(timer)
        return timer


async def test_no_task_or_timer_is_left_behind():
    """Waiting creates no task, and no countdown is left scheduled once the inputs were taken."""
    clock = TimersKept()
    caller = LiveCaller(clock=clock)
    before = asyncio.all_tasks()
    caller.press("1")
    await caller.next_input(TIMEOUT)
    await caller.next_input(TIMEOUT)
    task = asyncio.ensure_future(caller.next_input(TIMEOUT))
    await settle_tasks()
    caller.pause()
    await settle_tasks()
    caller.press("2")
    await task
    await settle_tasks()
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
    assert caller.deadline is None
    assert clock.timers  # the wait above did count down
    now = asyncio.get_running_loop().time()
    assert [t for t in clock.timers if not t.cancelled() and t.when() > now] == []  # none still to fire


async def test_a_live_call_runs_through_the_engine(system, caller):
    """A whole call with a live caller on the real clock: keys as pressed, Silence for no-input, then a hang-up."""
    call = asyncio.ensure_future(system.engine.run_call(caller, clock=RealClock(), number="+15550100001"))
    caller.press("2")
    caller.press("1")
    caller.silence()
    caller.silence()
    caller.hang_up()
    record = await asyncio.wait_for(call, 5)
    assert record.call.outcome == "abandoned"
    assert record.call.path == ["main_menu", "caller_kind", "lockout_check", "auth_method", "abandoned"]
    assert record.call.prompts.count("no_input") == 2
