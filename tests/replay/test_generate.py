"""`ivr scenarios generate`: scenarios for what a suite misses, green on replay, expectations from the rules."""

from __future__ import annotations

import json
import re

from ivr.directory.fixtures import load_world
from ivr.replay.generate import candidates


def coverage_of(run, tmp_path, *paths):
    """Replay ``paths`` in-process with ``--coverage-json``: the result and the JSON."""
    out = tmp_path / "coverage.json"
    result = run("replay", "--in-process", *paths, "--coverage-json", out)
    return result, json.loads(out.read_text(encoding="utf-8"))


def test_generated_and_shipped_scenarios_reach_every_transition_and_counter(run, suite, tmp_path, default_world_path):
    """``--missing`` against the shipped suite: the written scenarios replay green and close every gap."""
    out = tmp_path / "generated"
    generated = run("scenarios", "generate", "--missing", "--fixture", default_world_path, "--out", out, suite)
    assert generated.exit_code == 0, generated.output
    assert "DISAGREE" not in generated.output
    assert "cannot reach" not in generated.output
    written = sorted(out.glob("*.yaml"))
    assert written
    assert f"wrote {len(written)} scenarios to {out}" in generated.output
    alone = run("replay", "--in-process", out)
    assert alone.exit_code == 0, alone.output
    result, doc = coverage_of(run, tmp_path, suite, out)
    assert result.exit_code == 0, result.output
    assert doc["transitions"]["missing"] == []
    assert doc["counters"]["missing"] == []


def test_generated_alone_reach_every_transition(run, tmp_path, default_world_path):
    """Without ``--missing`` (no suite at all), the generated scenarios alone take every row of the flow."""
    out = tmp_path / "generated"
    generated = run("scenarios", "generate", "--fixture", default_world_path, "--out", out)
    assert generated.exit_code == 0, generated.output
    assert re.search(r"^wrote \d+ scenarios", generated.output, re.MULTILINE)
    result, doc = coverage_of(run, tmp_path, out)
    assert result.exit_code == 0, result.output
    assert doc["transitions"]["missing"] == []
    assert doc["counters"]["missing"] == []


def test_expectations_follow_from_the_rules_and_the_world(default_world_path):
    """A support code on Anna's limited contract: R4, one incident, severity B standard priority 3; on Saturday R8."""
    by_name = {c.name: c.doc["calls"][0] for c in candidates(load_world(default_world_path))}
    tuesday = by_name["code_entry_consumer_technical_1_tue"]
    assert tuesday["steps"][-2:] == [{"press": "1234500001#"}, {"press": "2"}]
    assert tuesday["expect"]["rule"] == "R4"
    assert tuesday["expect"]["deducted"] == {"K-ANNA-STD": 1}
    assert tuesday["expect"]["priority"] == 3
    assert tuesday["expect"]["events"] == [{"type": "ticket.created", "data": {"deduct": True}}]
    saturday = by_name["code_entry_consumer_technical_1_sat"]
    assert (saturday["expect"]["outcome"], saturday["expect"]["rule"], saturday["expect"]["reason"]) == (
        "fallback",
        "R8",
        "outside_hours",
    )


def test_a_broken_fixture_is_a_clear_error(run, tmp_path):
    """A fixture world that does not load: exit 2 with its file and line, nothing written."""
    bad = tmp_path / "world.yaml"
    bad.write_text("customers:\n  - {id: C-A}\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("scenarios", "generate", "--fixture", bad, "--out", out)
    assert result.exit_code == 2
    assert f"ERROR {bad}:2: " in result.output
    assert not out.exists()


def test_paths_without_missing_is_a_usage_error(run, suite, tmp_path, default_world_path):
    """A suite given without ``--missing`` would be ignored: it is refused (exit 2) instead."""
    result = run("scenarios", "generate", "--fixture", default_world_path, "--out", tmp_path / "out", suite)
    assert result.exit_code == 2
    assert "give --missing with them" in result.output
