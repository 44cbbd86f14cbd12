"""The load generator's measuring parts, each on its own: percentiles, timers, the script driver, /proc."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ivr.callers import HANGUP, NO_INPUT, Key, LiveCaller
from ivr.clock import RealClock
from ivr.engine import Heard
from ivr.load.drive import ScriptDriver
from ivr.load.metrics import KeyLatency, Samples, TimerLateness
from ivr.load.plan import HANG_UP
from ivr.load.procs import listener_pid, peak_rss_mb, vm_hwm_mb
from ivr.states.call import Call
from tests.conftest import TUESDAY_10AM


def test_percentiles_are_nearest_rank():
    """p50 of 1..100 ms is 50 ms, p99 is 99 ms, p100 the maximum; no samples, no figure."""
    samples = Samples(i / 1000 for i in range(1, 101))
    assert samples.summary_ms(50, 99, 100) == {"p50": 50.0, "p99": 99.0, "p100": 100.0, "samples": 100}
    assert Samples().summary_ms(50) == {"p50": None, "samples": 0}
    assert Samples().percentile(50) is None


class _Script:
    """A caller handing over fixed inputs."""

    def __init__(self, *inputs):
        self.inputs = list(inputs)

    async def next_input(self, _timeout):
        return self.inputs.pop(0)


async def test_keypress_to_prompt_is_timed_from_the_last_key_handed_over():
    """A key then a prompt is one sample; a no-input stamps nothing; digits are timed from their last key."""
    latency = KeyLatency()
    call = Call(id="c1", caller="+15550000001", started_at=TUESDAY_10AM)
    caller = latency.wrap(_Script(Key("1"), NO_INPUT, Key("2"), Key("#")), call_id="c1")
    assert await caller.next_input(5) == Key("1")
    await asyncio.sleep(0.01)
    latency.on_prompt(call, Heard("caller_kind", "..."))
    assert await caller.next_input(5) is NO_INPUT
    latency.on_prompt(call, Heard("no_input", "..."))  # no key pending: no sample
    await caller.next_input(5)
    await caller.next_input(5)
    latency.on_prompt(call, Heard("severity", "..."))
    assert len(latency.samples) == 2
    assert latency.samples.percentile(100) >= 0.01
    latency.forget("c1")


async def test_only_timers_that_fire_are_timed():
    """A timer that fires records its lateness and runs its callback; a cancelled one records nothing."""
    clock = TimerLateness(RealClock())
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    cancelled = clock.call_later(0.01, fired.clear)
    cancelled.cancel()
    await asyncio.wait_for(fired.wait(), 1)
    await asyncio.sleep(0.02)
    assert fired.is_set()
    assert len(clock.samples) == 1
    assert 0 <= clock.samples.percentile(50) < 0.5
    assert clock.now().tzinfo is not None


async def test_the_driver_presses_keys_after_their_pauses_and_stops_when_cancelled():
    """Keys arrive in order after their think times; a cancelled driver presses nothing more."""
    caller = LiveCaller(clock=RealClock())
    driver = ScriptDriver(caller=caller, beats=[(0.02, "2"), (0, "1"), (0.02, HANG_UP)])
    started = time.monotonic()
    driver.start()
    assert await caller.next_input(5) == Key("2")
    assert time.monotonic() - started >= 0.015
    assert await caller.next_input(5) == Key("1")
    assert await caller.next_input(5) is HANGUP

    stopped = LiveCaller(clock=RealClock())
    driver = ScriptDriver(caller=stopped, beats=[(0.05, "9")])
    driver.start()
    driver.cancel()
    assert await stopped.next_input(0.1) is NO_INPUT


def test_peak_memory_of_this_process_and_of_a_pid():
    """The peak of this process from getrusage; of a pid from VmHWM; None for a pid that does not exist."""
    assert peak_rss_mb() > 1
    assert vm_hwm_mb(os.getpid()) > 1
    assert vm_hwm_mb(None) is None
    assert vm_hwm_mb(2**22 + 12345) is None


@pytest.mark.broker
async def test_the_broker_is_found_by_the_port_it_listens_on(private_broker):
    """The private Mosquitto's pid is found from its loopback port, and its peak memory read."""
    config = private_broker.config
    pid = listener_pid(config.host, config.port)
    assert pid is not None
    assert "mosquitto" in await asyncio.to_thread(Path(f"/proc/{pid}/comm").read_text)
    assert vm_hwm_mb(pid) > 0
