"""`ivr replay` over bad files: each an ERROR row with file:line, exit 2, the other files still run, no secret shown."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ivr.cli import main
from tests.conftest import DEFAULT_WORLD_PATH, REPO

AT = "2026-11-17T10:00:00-05:00"
WORLD_HEAD = "customers:\n  - {id: C-A, name: A, kind: consumer}\ncontracts:\n"
CONTRACT = (
    "  - {id: K-X, customer: C-A, plan: standard, incidents: 1, valid_from: 2026-01-01, valid_until: 2027-01-01}\n"
)
#: Fixture worlds that crashed, hung or were accepted, each with the line its error must name.
BAD_WORLDS = {
    "incidents": (WORLD_HEAD + CONTRACT.replace("incidents: 1", "incidents: 99999999999999999999999"), 4),
    "feb30": (WORLD_HEAD + CONTRACT.replace("valid_from: 2026-01-01", "valid_from: 2026-02-30"), 4),
    "datetime": (WORLD_HEAD + CONTRACT.replace("valid_until: 2027-01-01", "valid_until: 2027-01-01T00:00:00"), 4),
    "nested": ("customers: " + "[" * 5000 + "]" * 5000 + "\n", 1),
    "unknown_field": (WORLD_HEAD + CONTRACT.replace("}", ", incidentz: 3}"), 4),
    "arabic_code": (WORLD_HEAD + CONTRACT + 'support_codes:\n  - {code: "\u0661234500001", contract: K-X}\n', 6),
}
#: Scenario lines (after the fixture line) that crashed or were accepted, with the line their error names.
BAD_CALLS = {
    "nan_silence": ('caller: "+15550199999"\nsteps:\n  - silence: .nan\n', 6),
    "unquoted_caller": ("caller: +15550199999\nsteps:\n  - press: '1'\n", 4),
    "empty_caller": ('caller: ""\nsteps:\n  - press: "1"\n', 4),
}


def scenario(fixture, rest='caller: "+15550199999"\nsteps:\n  - press: "1"\nexpect: {outcome: sales}\n', *, at=AT):
    """A scenario's text: name, at (line 2), fixture (line 3), then ``rest`` (caller on line 4)."""
    return f"name: a call\nat: {at}\nfixture: {fixture}\n{rest}"


@pytest.fixture
def folder(tmp_path):
    """A folder of scenarios: one good, one for each bad world and each bad call, one at 9999, one in Latin-1."""
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    bad: dict[str, tuple[str, int]] = {}
    for name, (text, line) in BAD_WORLDS.items():
        (fixtures / f"{name}.yaml").write_text(text, encoding="utf-8")
        (tmp_path / f"world_{name}.yaml").write_text(scenario(f"fixtures/{name}.yaml"), encoding="utf-8")
        bad[f"world_{name}"] = (str(fixtures / f"{name}.yaml"), line)
    for name, (rest, line) in BAD_CALLS.items():
        path = tmp_path / f"call_{name}.yaml"
        path.write_text(scenario(DEFAULT_WORLD_PATH, rest), encoding="utf-8")
        bad[f"call_{name}"] = (str(path), line)
    (tmp_path / "at_9999.yaml").write_text(scenario(DEFAULT_WORLD_PATH, at="9999-12-31T23:59:59-05:00"), "utf-8")
    bad["at_9999"] = (str(tmp_path / "at_9999.yaml"), 2)
    (tmp_path / "latin1.yaml").write_bytes(scenario(DEFAULT_WORLD_PATH).replace("a call", "caf\xe9").encode("latin-1"))
    bad["latin1"] = (str(tmp_path / "latin1.yaml"), 1)
    (tmp_path / "good.yaml").write_text(scenario(DEFAULT_WORLD_PATH), encoding="utf-8")
    return tmp_path, bad


def test_every_bad_file_is_a_located_error_and_the_good_one_still_runs(folder):
    """A real `ivr replay` process over the folder: exit 2, no traceback, an ERROR per bad file, good passes."""
    path, bad = folder
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-m", "ivr", "replay", "--in-process", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("ivr replay did not exit on bad files")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for name, (where, line) in bad.items():
        assert re.search(rf"^ERROR {re.escape(where)}:{line}: ", done.stdout, re.MULTILINE), (name, done.stdout)
    assert re.search(r"^good\s+sales\s+-\s+R1\s+-\s+PASS$", done.stdout, re.MULTILINE)
    assert f"1 passed, 0 failed, {len(bad)} unreadable" in done.stdout


def test_the_trace_masks_codes_but_not_file_names_or_caller_numbers(tmp_path):
    """``--trace``: a file name with a long digit run and the caller's number stay whole; the code is masked."""
    path = tmp_path / "r04_20261117_code.yaml"
    steps = 'caller: "15550100001"\nsteps:\n  - press: "212"\n  - press: "1234500001#"\n  - press: "2"\n'
    path.write_text(scenario(DEFAULT_WORLD_PATH, steps + "expect: {outcome: routed}\n"), encoding="utf-8")
    result = CliRunner().invoke(main, ["replay", "--in-process", "--trace", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"== {path} - a call" in result.stdout
    assert "-- call 1 r04_20261117_code-1 from +15550100001 at" in result.stdout
    assert '"caller":"+15550100001"' in result.stdout
    assert "support code ********01" in result.stdout
    assert "1234500001" not in result.stdout


def test_loader_errors_in_the_console_and_junit_never_hold_a_whole_code(tmp_path):
    """A duplicate code in a fixture and a code typed with a bad key: both errors masked, on screen and in JUnit."""
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    code = '  - {code: "1234500001", contract: K-X}\n'
    (fixtures / "dup.yaml").write_text(WORLD_HEAD + CONTRACT + "support_codes:\n" + code * 2, encoding="utf-8")
    (tmp_path / "dup.yaml").write_text(scenario("fixtures/dup.yaml"), encoding="utf-8")
    press = 'caller: "+15550100001"\nsteps:\n  - press: "1234500001#x"\n'
    (tmp_path / "press.yaml").write_text(scenario(DEFAULT_WORLD_PATH, press), encoding="utf-8")
    junit = tmp_path / "junit-replay.xml"
    result = CliRunner().invoke(
        main, ["replay", "--in-process", "--junit", str(junit), str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    assert "support_codes[1]: duplicate code '********01'" in result.stdout
    assert "press '**********#x' has keys a phone does not have: x" in result.stdout
    assert "1234500001" not in result.stdout
    assert "1234500001" not in junit.read_text(encoding="utf-8")
