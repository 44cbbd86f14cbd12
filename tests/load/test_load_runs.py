"""`ivr load` end to end over a private Mosquitto with `ivr ledger` as its own process."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.directory.rows import FIRST_NEW_TICKET
from ivr.load.mix import CallKind, Mix
from ivr.load.runner import LoadError, LoadOptions, run_load
from ivr.settings import Settings
from tests.integration.conftest import retained

pytestmark = pytest.mark.broker

#: Quick callers: a tenth of a second between keys, and a no-input silence in one call of three.
QUICK = Mix(
    weights={
        CallKind.SALES: 1,
        CallKind.TICKET: 2,
        CallKind.SUPPORT_CODE: 4,
        CallKind.LICENSE_KEY: 2,
        CallKind.WRONG_CODE: 1,
        CallKind.CLOSED_TICKET: 1,
        CallKind.HANG_UP: 1,
    },
    think_seconds=(0.05, 0.15),
    no_input_share=0.3,
)


async def test_the_same_seed_gives_the_same_calls_and_outcomes(private_broker, tmp_path):
    """Two runs with seed 5 make identical calls with identical outcomes; seed 6 makes other calls."""
    config = private_broker.config
    reports = [
        await run_load(
            LoadOptions(calls=150, seed=seed, settings=Settings(broker=config), customers=40, workdir=tmp_path / name)
        )
        for seed, name in ((5, "a"), (5, "b"), (6, "c"))
    ]
    first, second, other = reports
    for report in reports:
        assert report.ok, report.text()
        assert report.completed == 150
        assert report.verify["ok"]
        assert report.deductible == report.verify["deductions"] == report.deducted
    assert (first.plan_digest, first.outcome_digest) == (second.plan_digest, second.outcome_digest)
    assert (first.kinds, first.outcomes, first.events) == (second.kinds, second.outcomes, second.events)
    assert other.plan_digest != first.plan_digest


async def test_real_time_calls_end_as_their_virtual_time_twins(private_broker, tmp_path):
    """The same seed live on the real clock (timers firing) and scripted on virtual clocks: same outcomes."""
    config = private_broker.config
    options = {"calls": 24, "seed": 3, "settings": Settings(broker=config), "customers": 40, "mix": QUICK}
    live = await run_load(LoadOptions(**options, realtime=True, rate=40, workdir=tmp_path / "live"))
    fast = await run_load(LoadOptions(**options, workdir=tmp_path / "fast"))
    assert live.ok, live.text()
    assert fast.ok, fast.text()
    assert live.outcome_digest == fast.outcome_digest
    assert live.timer_lateness_ms is not None
    assert live.timer_lateness_ms["samples"] > 0  # the 6 s silences fired the 5 s no-input timer
    assert fast.timer_lateness_ms is None
    assert live.key_to_prompt_ms["samples"] == fast.key_to_prompt_ms["samples"] > 0


def test_the_command_prints_a_json_report(private_broker):
    """`ivr load --json` reports calls, rates, latencies, peak memory of all four processes, and verify."""
    result = CliRunner().invoke(
        main, ["load", "--calls", "80", "--customers", "40", "--broker", private_broker.config.url, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["completed"] == 80
    assert report["ok"]
    assert report["exactly_once"]
    assert report["calls_per_s"] > 0
    assert report["events_per_s"] > report["calls_per_s"]
    assert report["ticket_to_answer_ms"]["samples"] == report["deductible"] > 0
    assert set(report["key_to_prompt_ms"]) == {"p50", "p95", "p99", "samples"}
    assert all(report["rss_mb"][process] > 0 for process in ("ivr", "ledger", "relay", "broker"))
    assert report["verify"]["output"].endswith("problems)")
    assert "OK" in report["verify"]["output"]


async def test_a_load_run_leaves_no_status_behind(private_broker, tmp_path):
    """Its IVR, ledger and relay are named for the run alone: each clears its status at the end, none stays offline."""
    config = private_broker.config
    report = await run_load(
        LoadOptions(calls=20, seed=5, settings=Settings(broker=config), customers=40, workdir=tmp_path / "run")
    )
    assert report.ok
    assert await retained(config, "ivr/v2/status/#") == {}


def _children(pid: int) -> dict[int, str]:
    """The processes ``pid`` started, with their command lines (Linux's /proc)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_load_run_killed_mid_run_takes_its_ledger_and_relay_with_it(private_broker):
    """SIGKILL to `ivr load` (no cleanup can run) still ends its `ivr ledger` and `ivr relay`."""
    argv = [sys.executable, "-m", "ivr", "load", "--calls", "100000", "--rate", "100", "--customers", "40"]
    load = subprocess.Popen(  # noqa: S603 - our own command
        [*argv, "--broker", private_broker.config.url, "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        children: dict[int, str] = {}
        while not any(" relay" in cmd for cmd in children.values()) and time.monotonic() < deadline:
            assert load.poll() is None, "ivr load ended before it started its relay"
            time.sleep(0.1)
            children = _children(load.pid)
        ledger = [pid for pid, cmd in children.items() if " ledger " in cmd and " run" in cmd]
        relay = [pid for pid, cmd in children.items() if " relay" in cmd]
        assert ledger, children
        assert relay, children
    finally:
        load.kill()
        load.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in ledger + relay) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in ledger + relay if _running(pid)], "a child outlived its killed ivr load"


async def test_the_publisher_inside_the_ivr_makes_the_same_calls_as_the_relay(private_broker, tmp_path):
    """--no-relay publishes from a task in the IVR: the same calls, outcomes and exact ledger as with `ivr relay`."""
    config = private_broker.config
    options = {"calls": 120, "seed": 4, "settings": Settings(broker=config), "customers": 40}
    relayed = await run_load(LoadOptions(**options, workdir=tmp_path / "relay"))
    inline = await run_load(LoadOptions(**options, relay=False, workdir=tmp_path / "inline"))
    for report in (relayed, inline):
        assert report.ok, report.text()
        assert report.exactly_once
    assert relayed.outcome_digest == inline.outcome_digest
    assert relayed.rss_mb["relay"] is not None
    assert inline.rss_mb["relay"] is None


def test_workers_share_the_calls_and_the_ledger_deducts_each_ticket_once(private_broker, tmp_path):
    """`--workers 3`: three IVRs share the calls, each once, with one IVR's outcomes; tickets never collide.

    Every ticket is verified once, and the digests are those of one process given the same seed.
    """
    argv = [
        "load",
        "--calls",
        "150",
        "--customers",
        "40",
        "--json",
        "--seed",
        "7",
        "--broker",
        private_broker.config.url,
    ]
    result = CliRunner().invoke(main, [*argv, "--workers", "3", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"]
    assert report["exactly_once"]
    assert sum(w["calls"] for w in report["workers"]) == report["completed"] == 150  # a worker may take none
    alone = CliRunner().invoke(main, [*argv, "--workdir", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    one = json.loads(alone.stdout)
    assert (report["plan_digest"], report["outcome_digest"]) == (one["plan_digest"], one["outcome_digest"])
    assert report["deducted"] == report["deductible"] == report["verify"]["deductions"] > 0
    made = {k: _new_tickets(tmp_path / f"worker-{k}" / "ivr.db") for k in range(3)}
    assert sum(len(numbers) for numbers in made.values()) == report["tickets"] > 0
    for k, numbers in made.items():  # worker k numbers its tickets k modulo 3: no ID is made twice
        assert {(n - FIRST_NEW_TICKET) % 3 for n in numbers} <= {k}


def _new_tickets(db):
    """The tickets an IVR created (numbered from FIRST_NEW_TICKET), read from its directory file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT CAST(id AS INTEGER) FROM tickets WHERE CAST(id AS INTEGER) >= ?", (FIRST_NEW_TICKET,)
        )
        return [row[0] for row in rows]


def test_the_command_refuses_a_ledger_running_without_a_broker():
    """--ledger-running with a private broker makes no sense: a usage error, exit 2."""
    result = CliRunner().invoke(main, ["load", "--calls", "1", "--ledger-running"], env={"IVR_BROKER": None})
    assert result.exit_code == 2
    assert "--ledger-running needs --broker" in result.output


def test_a_worker_without_a_call_file_is_refused():
    """`--shard K/N` alone would have every worker run every call: a usage error, exit 2."""
    result = CliRunner().invoke(main, ["load", "--calls", "10", "--shard", "1/2"])
    assert result.exit_code == 2
    assert "--shard needs --calls-from" in result.output


async def test_a_work_folder_holding_an_earlier_run_is_refused(tmp_path):
    """A work folder with an ivr.db already in it is not overwritten."""
    (tmp_path / "ivr.db").write_bytes(b"")
    with pytest.raises(LoadError, match="earlier run"):
        await run_load(LoadOptions(calls=1, workdir=tmp_path))
