"""Codes and keys never reach a log line, a replay trace or a JUnit report whole."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
import structlog
from structlog.testing import capture_logs

from ivr.bus.broker import embedded_broker
from ivr.logs import configure
from ivr.replay.report import failures_text, junit_xml, trace_text
from ivr.replay.runner import replay
from ivr.settings import Settings
from tests.conftest import DEFAULT_WORLD_PATH, REPO

EST = timezone(timedelta(hours=-5))
ANNA, GLOBEX = "+15550100001", "+15550200002"
SECRETS = ("1234500001", "1234500009", "40000002", "40000009")

#: A valid and an invalid support code, a valid and an invalid license key.
CALLS = [
    (["2", "1", "2", "1234500001#", "2"], ANNA),
    (["2", "1", "2", "1234500009#", "hangup"], ANNA),
    (["2", "2", "3", "40000002#", "1"], GLOBEX),
    (["2", "2", "3", "40000009#", "hangup"], GLOBEX),
]


def leaks(entries) -> list[str]:
    """Every secret found whole in any value of any captured log entry, stringified."""
    found = []
    for entry in entries:
        text = " ".join(f"{k}={v!s}" for k, v in entry.items()) + repr(entry)
        found.extend(f"{s} in {entry}" for s in SECRETS if s in text)
    return found


async def test_no_captured_log_entry_holds_a_code_or_key(run_call):
    """Raw log entries (before any scrubbing processor) never hold a code or key whole."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries:
        records = [await run_call(script, number=number) for script, number in CALLS]
    assert [r.call.outcome for r in records] == ["routed", "abandoned", "routed", "abandoned"]
    decisions = [e for e in entries if e["event"] == "decision"]
    assert len(decisions) >= 4, "the calls did log their decisions"
    assert {e.get("call_id") for e in decisions} == {r.call.id for r in records}
    assert leaks(entries) == []


async def test_rendered_json_logs_scrub_even_a_code_typed_at_the_ticket_prompt(run_call, capsys):
    """The last line of defence: rendered log lines mask any 8+ digit run, whatever a log call was given."""
    configure(fmt="json", level="debug")
    await run_call(["2", "1", "1", "1234500001#", "hangup"], number=ANNA)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line.get("event") == "decision" for line in lines)
    assert "1234500001" not in err


def write_scenario(path, *, caller, keys, expect, fixture):
    """A one-call scenario file at ``path``."""
    steps = "\n".join(f'  - press: "{k}"' for k in keys)
    path.write_text(
        f'name: {path.stem}\nat: 2026-11-17T10:00:00-05:00\nfixture: {fixture}\ncaller: "{caller}"\n'
        f"steps:\n{steps}\n  - hangup\nexpect:\n{expect}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def secret_scenarios(tmp_path, default_world_path):
    """Scenario files entering valid and invalid codes and keys, two of them with wrong expectations."""
    specs = [
        ("valid_code", ANNA, ["2", "1", "2", "1234500001#", "2"], "  outcome: routed"),
        ("invalid_code", ANNA, ["2", "1", "2", "1234500009#"], "  outcome: routed"),  # fails on purpose
        ("valid_key", GLOBEX, ["2", "2", "3", "40000002#", "1"], "  outcome: routed"),
        ("invalid_key", GLOBEX, ["2", "2", "3", "40000009#"], "  outcome: sales"),  # fails on purpose
    ]
    return [
        write_scenario(tmp_path / f"{name}.yaml", caller=caller, keys=keys, expect=expect, fixture=default_world_path)
        for name, caller, keys, expect in specs
    ]


async def test_replay_trace_and_junit_hold_no_code_or_key(secret_scenarios, tmp_path):
    """The replay trace and the JUnit XML (failures included) never show a code or key whole."""
    with capture_logs() as entries:
        results, unreadable = await replay(secret_scenarios)
    assert unreadable == []
    assert [r.passed for r in results] == [True, False, True, False]
    trace = trace_text(results)
    assert "decide:" in trace
    assert "auth.denied" in trace
    junit = tmp_path / "junit.xml"
    junit_xml(results, unreadable, junit)
    xml = junit.read_text(encoding="utf-8")
    assert "<failure" in xml
    for secret in SECRETS:
        assert secret not in trace
        assert secret not in xml
    assert leaks(entries) == []


async def test_a_full_replay_over_a_broker_shows_no_code_or_key_anywhere(tmp_path, world):
    """All shipped scenarios over a broker, and a file naming a code it cannot load: logs, text, JUnit masked."""
    broken = tmp_path / "broken.yaml"
    keys = ["2", "1", "2", "1234500001#x"]
    write_scenario(broken, caller=ANNA, keys=keys, expect="  outcome: routed", fixture=DEFAULT_WORLD_PATH)
    files = [*sorted((REPO / "scenarios").rglob("*.yaml")), broken]
    files = [f for f in files if "fixtures" not in f.parts]
    with capture_logs() as entries:
        async with embedded_broker() as broker:
            results, unreadable = await replay(files, settings=Settings(broker=broker))
    assert len(results) == len(files) - 1
    assert all(r.passed for r in results)
    assert [f.path for f in unreadable] == [broken]
    junit = tmp_path / "junit.xml"
    junit_xml(results, unreadable, junit)
    shown = "\n".join(
        [trace_text(results), failures_text(results, unreadable), junit.read_text(encoding="utf-8"), repr(entries)]
    )
    assert "1234500001#x" not in shown
    assert [s for s in (*world.support_codes, *world.license_keys) if s in shown] == []
    assert any(e["event"] == "decision" for e in entries), "the calls did log"
