"""Coverage and baselines over the shipped suite: the JSON, the diagram, and the calls a fixture change moves."""

from __future__ import annotations

import json
import re
import shutil

from ivr.replay.coverage import CATEGORIES, Coverage
from ivr.states.flow import STATES, TRANSITIONS
from tests.conftest import DEFAULT_WORLD_PATH

#: The calls that authorize against K-GLOBEX-STD with a rule that needs an incident left (R2's ticket
#: 1000102 on a technical call, R5's key 40000002): with 0 incidents each is refused (no_incidents).
#: R3 (business licensing) skips the contract check, so r03_* calls on the same contract stay as they were.
GLOBEX_CALLS = {
    "input/star_replays_menu.yaml call 1",
    "input/wrong_length_key.yaml call 1",
    "rules/r02_ticket_pending.yaml call 1",
    "rules/r05_key_valid.yaml call 1",
    "rules/r08_outside_hours_weekday_evening.yaml call 1",
    "rules/r09_priority_standard_severity_d.yaml call 1",
    "rules/r10_case_numbers_per_call.yaml call 2",
}


def test_coverage_json_has_the_four_categories_and_the_shipped_figures(shipped):
    """``--coverage-json``: covered, total and missing per category; the shipped suite takes every row of the flow."""
    doc = json.loads(shipped.coverage_json.read_text(encoding="utf-8"))
    assert list(doc) == list(CATEGORIES)
    for name in CATEGORIES:
        assert set(doc[name]) == {"covered", "total", "missing"}
        assert doc[name]["covered"] == doc[name]["total"] - len(doc[name]["missing"])
        assert doc[name]["total"] == len(Coverage().category(name).items)
    assert doc["states"] == {"covered": len(STATES), "total": len(STATES), "missing": []}
    assert doc["transitions"] == {"covered": len(TRANSITIONS), "total": len(TRANSITIONS), "missing": []}


def test_coverage_text_lists_every_item_never_reached(shipped):
    """``--coverage`` prints the figures after the table, then each missing item under its category."""
    out = shipped.result.stdout
    doc = json.loads(shipped.coverage_json.read_text(encoding="utf-8"))
    figures = ", ".join(f"{n} {doc[n]['covered']}/{doc[n]['total']}" for n in CATEGORIES)
    assert f"coverage: {figures}" in out
    assert out.index("RESULT") < out.index("coverage:")
    for name in CATEGORIES:
        for item in doc[name]["missing"]:
            assert f"  - {item}\n" in out


def test_coverage_html_draws_the_flow_with_covered_and_missing_arrows(shipped):
    """``--coverage-html``: the flow diagram, arrows a call took green, arrows none took red, Mermaid alongside."""
    page = (shipped.coverage_html / "index.html").read_text(encoding="utf-8")
    assert "flowchart TD" in page
    assert re.search(r"linkStyle [\d,]+ stroke:#2e7d32", page)
    # A hang-up while the engine works (authorizing) cannot be scripted: that arrow stays red.
    assert re.search(r"linkStyle [\d,]+ stroke:#c62828", page)
    assert (shipped.coverage_html / "mermaid.min.js").stat().st_size > 0


def test_a_fixture_change_fails_the_baseline_listing_exactly_the_calls_it_moved(shipped, run, suite, tmp_path):
    """K-GLOBEX-STD given 0 incidents in a copy of the suite: exit 1, and CHANGED names exactly its calls."""
    recorded = json.loads(shipped.baseline.read_text(encoding="utf-8"))
    assert len(recorded["calls"]) == int(re.search(r"(\d+) calls", shipped.result.stdout).group(1))
    copy = tmp_path / "suite"
    shutil.copytree(suite, copy)
    for scenario in copy.glob("*/*.yaml"):  # the copy's scenarios use a world of its own, not the packaged one
        scenario.write_text(
            scenario.read_text(encoding="utf-8").replace("fixture: default\n", "fixture: ../fixtures/default.yaml\n"),
            encoding="utf-8",
        )
    world = copy / "fixtures" / "default.yaml"
    world.parent.mkdir()
    text = DEFAULT_WORLD_PATH.read_text(encoding="utf-8")
    changed = text.replace(
        "{id: K-GLOBEX-STD, customer: B-GLOBEX, plan: standard, incidents: 10,",
        "{id: K-GLOBEX-STD, customer: B-GLOBEX, plan: standard, incidents: 0,",
    )
    assert changed != text
    world.write_text(changed, encoding="utf-8")
    result = run("replay", "--in-process", copy, "--baseline", shipped.baseline)
    assert result.exit_code == 1, result.output
    listed = set(re.findall(r"^CHANGED (.+)$", result.stdout, re.MULTILINE))
    assert listed == GLOBEX_CALLS
    assert f"baseline {shipped.baseline}: {len(GLOBEX_CALLS)} call(s) end differently" in result.stdout
    assert "  - decisions: was R5 granted > R10 granted; now R5 denied no_incidents" in result.stdout


def test_an_unchanged_sub_folder_matches_the_baseline(shipped, run, suite):
    """Replaying ``scenarios/rules`` alone against the whole suite's baseline: exit 0, every call as before."""
    result = run("replay", "--in-process", suite / "rules", "--baseline", shipped.baseline)
    assert result.exit_code == 0, result.output
    assert "every call ends as before" in result.stdout


def test_a_file_that_is_not_a_baseline_is_a_clear_error(run, suite, tmp_path):
    """``--baseline`` on a non-baseline file: exit 2 with the reason, before anything runs, no traceback."""
    bad = tmp_path / "b.json"
    bad.write_text("[1, 2", encoding="utf-8")
    result = run("replay", "--in-process", suite / "rules" / "r01_sales_bypass.yaml", "--baseline", bad)
    assert result.exit_code == 2
    assert "not a baseline (not JSON" in result.output
    assert "Traceback" not in result.output


def test_a_report_that_cannot_be_written_is_a_clear_error(run, suite, tmp_path):
    """``--coverage-json`` into a folder that does not exist: the table still prints, then exit 2 naming the file."""
    target = tmp_path / "no-such-folder" / "c.json"
    result = run("replay", "--in-process", suite / "rules" / "r01_sales_bypass.yaml", "--coverage-json", target)
    assert result.exit_code == 2
    assert "1 passed, 0 failed" in result.stdout
    assert f"ERROR {target}: cannot write: No such file or directory" in result.stderr
