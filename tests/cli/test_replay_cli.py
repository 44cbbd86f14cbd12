"""`ivr replay` from the command line: exit codes, located errors, JUnit, traces and JSON logs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main

REPO = Path(__file__).resolve().parents[2]
R01 = REPO / "scenarios" / "rules" / "r01_sales_bypass.yaml"
R04 = REPO / "scenarios" / "rules" / "r04_support_code.yaml"
AT = "2026-11-17T10:00:00-05:00"


def scenario(fixture, *, at=AT, step='  - press: "1"', outcome="sales", caller='"+15550199999"') -> str:
    """A sales scenario's text, one line per field so errors have known lines (step: 6, outcome: 8)."""
    lines = ["name: a sales call"]
    if at is not None:
        lines.append(f"at: {at}")
    lines += [f"fixture: {fixture}", f"caller: {caller}", "steps:", step, "expect:", f"  outcome: {outcome}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write(tmp_path, default_world_path):
    """Write a scenario file into tmp_path: ``write("name", **changes)`` gives its path."""

    def make(name, text=None, *, fixture=default_world_path, **changes):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text if text is not None else scenario(fixture, **changes), encoding="utf-8")
        return path

    return make


@pytest.fixture
def replay(monkeypatch):
    """Run ``ivr replay --in-process ARGS`` in-process with click's runner; gives the result."""
    monkeypatch.delenv("IVR_BROKER", raising=False)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["replay", "--in-process", *map(str, args)], catch_exceptions=False)

    return run


def test_shipped_scenarios_pass_with_exit_0(replay):
    """The shipped R1 and R4 scenarios pass: exit 0, a PASS row each and the summary."""
    result = replay(R01, R04)
    assert result.exit_code == 0, result.output
    assert re.search(r"^r01_sales_bypass\s+sales\s+-\s+R1\s+-\s+PASS$", result.stdout, re.MULTILINE)
    assert re.search(r"^r04_support_code\s+routed\s+-\s+R4\s+R10 granted\s+PASS$", result.stdout, re.MULTILINE)
    assert "2 passed, 0 failed (2 scenarios, 2 calls" in result.stdout


def test_shipped_scenarios_pass_as_a_real_subprocess():
    """``python -m ivr replay`` as a separate process: exit 0 on the shipped scenarios."""
    python = REPO / ".venv" / "bin" / "python"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [str(python if python.exists() else sys.executable), "-m", "ivr", "replay", "--in-process", str(R01), str(R04)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout


def test_a_wrong_expectation_exits_1_with_expected_got_and_the_path(replay, write):
    """A scenario whose expectation is wrong: exit 1, "expected ... got ...", the file:line and the state path."""
    path = write("wrong", outcome="routed")
    result = replay(path)
    assert result.exit_code == 1, result.output
    assert "outcome: expected routed, got sales" in result.stdout
    assert f"FAIL {path}:8 " in result.stdout
    assert "path: main_menu -> sales" in result.stdout
    assert re.search(r"^wrong\s+sales\s+-\s+R1\s+-\s+FAIL$", result.stdout, re.MULTILINE)
    assert "0 passed, 1 failed" in result.stdout


def test_failures_beat_nothing_but_unreadable_beats_failures(replay, write):
    """A failure and an unreadable file in one run: exit 2, and both are reported."""
    result = replay(write("wrong", outcome="routed"), write("broken", step='  - pres: "1"'))
    assert result.exit_code == 2
    assert "outcome: expected routed, got sales" in result.stdout
    assert "unknown step 'pres'" in result.stdout


MALFORMED = [
    pytest.param({"step": '  - pres: "1"'}, 6, "unknown step 'pres'; expected press, silence or hangup", id="pres"),
    pytest.param({"at": None}, 1, "scenario: missing 'at'", id="missing-at"),
    pytest.param({"outcome": "salse"}, 8, "unknown outcome 'salse'", id="unknown-outcome"),
    pytest.param({"step": '  - press: "1a"'}, 6, "has keys a phone does not have: a", id="bad-key-char"),
    pytest.param({"at": "2026-11-17T10:00:00"}, 2, "needs a UTC offset", id="naive-at"),
    pytest.param({"step": "  - silence: -3"}, 6, "silence must be a positive number", id="negative-silence"),
]


@pytest.mark.parametrize(("changes", "line", "message"), MALFORMED)
def test_a_malformed_scenario_exits_2_with_file_line_message_and_the_others_still_run(
    replay,
    write,
    changes,
    line,
    message,
):
    """A malformed file is reported as ``file:line: message`` (exit 2) while the good files still run."""
    good = write("good")
    bad = write("bad", **changes)
    result = replay(good, bad, R01)
    assert result.exit_code == 2, result.output
    error = next(ln for ln in result.stdout.splitlines() if ln.startswith("ERROR"))
    assert error.startswith(f"ERROR {bad}:{line}: ")
    assert message in error
    assert re.search(r"^good\s+sales\s+-\s+R1\s+-\s+PASS$", result.stdout, re.MULTILINE)
    assert re.search(r"^bad\.yaml\s+-\s+-\s+-\s+-\s+ERROR$", result.stdout, re.MULTILINE)
    assert "2 passed, 0 failed, 1 unreadable" in result.stdout


def test_bad_yaml_exits_2_with_its_line(replay, write, default_world_path):
    """A YAML syntax error is located by line too, and the other files still run."""
    bad = write("bad", f"name: x\nat: {AT}\nfixture: {default_world_path}\nsteps: [{{press: '1'}}\nexpect:\n")
    result = replay(write("good"), bad)
    assert result.exit_code == 2
    assert re.search(rf"^ERROR {re.escape(str(bad))}:\d+: invalid YAML", result.stdout, re.MULTILINE)
    assert "1 passed, 0 failed, 1 unreadable" in result.stdout


def test_a_missing_path_exits_2(replay, write, tmp_path):
    """A path that does not exist is an error of its own; the rest still runs."""
    result = replay(write("good"), tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert f"ERROR {tmp_path / 'nope.yaml'}: no such file or folder" in result.stderr
    assert "1 passed" in result.stdout


def test_a_folder_runs_every_scenario_in_it_but_not_fixtures(replay, write, tmp_path):
    """A folder is searched for scenarios; files under a ``fixtures`` folder are not scenarios."""
    write("one")
    write("two")
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "world.yaml").write_text("customers: []\n", encoding="utf-8")
    result = replay(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed (2 scenarios" in result.stdout


def test_junit_xml_is_valid_and_lists_failures_and_errors(replay, write, tmp_path):
    """``--junit`` writes well-formed XML: a case per file, a failure per unmet expectation, an error per bad file."""
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    result = replay("--junit", junit, write("good"), write("wrong", outcome="routed"), write("bad", outcome="x"))
    assert result.exit_code == 2
    suite = ET.parse(junit).getroot()  # noqa: S314 - our own output
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"good", "wrong", "bad"}
    assert [child.tag for child in cases["good"]] == ["system-out"]
    failure = cases["wrong"].find("failure")
    assert failure is not None
    assert "outcome: expected routed, got sales" in failure.get("message")
    error = cases["bad"].find("error")
    assert error is not None
    assert "unknown outcome 'x'" in error.get("message")


def test_trace_shows_states_prompts_decisions_and_events(replay):
    """``--trace`` prints each call's path, prompts, decisions and numbered events, codes masked."""
    result = replay("--trace", R04)
    assert result.exit_code == 0
    out = result.stdout
    assert "states:  main_menu -> caller_kind -> lockout_check -> auth_method -> code_entry" in out
    assert "prompt:  enter_code: Please enter your 10-digit support code" in out
    assert "decide:  R4 granted: support code ********01" in out
    assert "event:   #1 ivr.call.started" in out
    assert "event:   #3 ivr.ticket.created" in out
    assert "ledger:  deducted {'K-ANNA-STD': 1}" in out
    assert "1234500001" not in out


def test_json_logs_on_stderr_carry_the_call_id(replay):
    """``--log-format json --log-level info``: every stderr line is JSON, and a call's lines carry its call_id."""
    result = replay("--log-format", "json", "--log-level", "info", R01)
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    call_lines = [line for line in lines if line.get("event") in {"call started", "prompt", "event", "call ended"}]
    assert len(call_lines) >= 4
    assert {line["call_id"] for line in call_lines} == {"r01_sales_bypass-1"}
    assert all(line["level"] == "info" for line in call_lines)
    assert "timestamp" in call_lines[0]
    assert not any(line.lstrip().startswith("{") for line in result.stdout.splitlines())


def test_default_log_level_keeps_stderr_quiet(replay):
    """At the default level (warning) a passing replay writes no log lines."""
    result = replay(R01)
    assert result.exit_code == 0
    assert result.stderr == ""


GOOD_CONTRACT = (
    "  - {id: K-X, customer: C-A, plan: standard, incidents: 1, valid_from: 2026-01-01, valid_until: 2027-01-01}"
)

BAD_FIXTURES = [
    pytest.param(
        GOOD_CONTRACT.replace("C-A", "C-NOPE"),
        "contracts[0] (K-X): 'customer' names 'C-NOPE', which is not defined",
        id="unknown-customer",
    ),
    pytest.param(
        GOOD_CONTRACT.replace("standard", "gold"),
        "contracts[0] (K-X): 'plan' is 'gold'; expected one of",
        id="unknown-plan",
    ),
]


def bad_fixture(contract_line, *, code='"1234500001"') -> str:
    """A fixture with one customer, one contract (line 4) and one support code (line 6)."""
    return (
        "customers:\n  - {id: C-A, name: A, kind: consumer}\ncontracts:\n"
        f"{contract_line}\nsupport_codes:\n  - {{code: {code}, contract: K-X}}\n"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        *[pytest.param(bad_fixture(p.values[0]), 4, p.values[1], id=p.id) for p in BAD_FIXTURES],
        pytest.param(
            bad_fixture(GOOD_CONTRACT, code='"123456789"'),
            6,
            "support_codes[0]: 'code' must be exactly 10 digits",
            id="nine-digit-code",
        ),
    ],
)
def test_a_malformed_fixture_names_its_file_line_and_entry(replay, write, tmp_path, text, line, message):  # noqa: PLR0913, PLR0917 - fixtures and parameters
    """A scenario over a broken fixture fails to load with exit 2, naming the fixture file, line and entry."""
    fixture = tmp_path / "broken-world.yaml"
    fixture.write_text(text, encoding="utf-8")
    scenario_path = write("uses-broken", fixture=fixture)
    result = replay(scenario_path, R01)
    assert result.exit_code == 2, result.output
    assert f"ERROR {fixture}:{line}: {message}" in result.stdout
    assert "1 passed" in result.stdout
