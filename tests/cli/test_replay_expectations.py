"""`absent`, event data, `decisions` and `examples`: expectations that say what did not happen, and outlines."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

AT = "2026-11-17T10:00:00-05:00"
SALES = ['  - press: "1"']
SUPPORT_CODE = ['  - press: "2"', '  - press: "1"', '  - press: "2"', '  - press: "1234500001#"', '  - press: "2"']
CLOSED_THEN_HANGUP = ['  - press: "2"', '  - press: "1"', '  - press: "1"', '  - press: "1000002#"', "  - hangup"]


@pytest.fixture
def scenario(tmp_path, default_world_path):
    """``scenario(name, steps, expect_lines)`` writes a one-call scenario (one step: ``expect``'s first line is 8)."""

    def write(name, steps, expect, *, extra=()):
        lines = [
            f"name: {name}",
            f"at: {AT}",
            f"fixture: {default_world_path}",
            'caller: "+15550100001"',
            *extra,
            "steps:",
            *steps,
            "expect:",
            *(f"  {line}" for line in expect),
        ]
        path = tmp_path / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


def test_a_sales_call_without_an_authorization_passes_absent_auth_granted(ivr, scenario):
    """R1: a sales call asks for no authorization, so ``absent: {events: [auth.granted]}`` holds."""
    path = scenario("sales", SALES, ["outcome: sales", "absent: {events: [auth.granted], states: [authorizing]}"])
    result = ivr("replay", "--in-process", path)
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.stdout


def test_a_support_code_call_fails_absent_ticket_created(ivr, scenario):
    """R4: a support code creates a ticket, so ``absent: {events: [ticket.created]}`` fails, naming the event."""
    path = scenario(
        "code", SUPPORT_CODE, ["outcome: routed", "absent: {events: [ticket.created], prompts: [severity]}"]
    )
    result = ivr("replay", "--in-process", path)
    assert result.exit_code == 1, result.output
    assert "absent: event 'ivr.ticket.created' happened (#3)" in result.stdout
    assert "absent: prompt 'severity' was played" in result.stdout


def test_an_event_item_matches_the_data_fields_it_names(ivr, scenario):
    """``{type: ticket.created, data: {deduct: true}}`` matches R4's limited contract; ``deduct: false`` does not."""
    good = scenario("deducts", SUPPORT_CODE, ["events: [call.started, {type: ticket.created, data: {deduct: true}}]"])
    bad = scenario("no-deduct", SUPPORT_CODE, ["events: [{type: ticket.created, data: {deduct: false}}]"])
    result = ivr("replay", "--in-process", good, bad)
    assert result.exit_code == 1
    assert re.search(r"^deducts\s.*PASS$", result.stdout, re.MULTILINE)
    assert "'ivr.ticket.created {deduct: False}' missing from" in result.stdout


def test_decisions_catch_a_denial_the_caller_hung_up_after(ivr, scenario):
    """R2 refuses the closed ticket, then the caller hangs up: ``decisions`` checks the denial, the table shows it."""
    right = scenario(
        "closed",
        CLOSED_THEN_HANGUP,
        ["outcome: abandoned", "decisions: [{rule: R2, granted: false, reason: ticket_closed}]"],
    )
    wrong = scenario("wrong", CLOSED_THEN_HANGUP, ["decisions: [{rule: R2, granted: false, reason: unknown_ticket}]"])
    result = ivr("replay", "--in-process", right, wrong)
    assert result.exit_code == 1
    assert re.search(r"^closed\s+abandoned\s+-\s+hangup\s+R2 denied ticket_closed\s+PASS$", result.stdout, re.MULTILINE)
    assert (
        "decisions: expected ['R2 denied unknown_ticket'] in order; "
        "'R2 denied unknown_ticket' missing from ['R2 denied ticket_closed']" in result.stdout
    )


def test_the_rule_summary_counts_scenarios_and_passes_per_rule(ivr, scenario):
    """After the table: per rule, the scenarios it decided in and how many of them passed."""
    result = ivr(
        "replay",
        "--in-process",
        scenario("sales", SALES, ["outcome: sales"]),
        scenario("closed", CLOSED_THEN_HANGUP, ["outcome: routed"]),
    )
    assert result.exit_code == 1
    assert re.search(r"^RULE\s+SCENARIOS\s+PASSED$", result.stdout, re.MULTILINE)
    assert re.search(r"^R1\s+1\s+1$", result.stdout, re.MULTILINE)
    assert re.search(r"^R2\s+1\s+0$", result.stdout, re.MULTILINE)
    assert re.search(r"^hangup\s+1\s+0$", result.stdout, re.MULTILINE)


def test_three_examples_are_three_runs_rows_and_junit_cases(ivr, scenario, tmp_path):
    """``examples:`` with three rows: three runs, each ``${name}`` filled, three rows and three JUnit cases."""
    examples = [
        "examples:",
        '  - {code: "1234500001", contract: K-ANNA-STD}',
        '  - {code: "4000000002", contract: K-GLOBEX-STD}',
        '  - {code: "1234500006", contract: K-FAY-ONE}',
    ]
    steps = ['  - press: "2"', '  - press: "1"', '  - press: "2"', '  - press: "${code}#"', '  - press: "4"']
    path = scenario("outline", steps, ["outcome: routed", "rule: R4", "deducted: {${contract}: 1}"], extra=examples)
    junit = tmp_path / "junit.xml"
    result = ivr("replay", "--in-process", "--junit", junit, path)
    assert result.exit_code == 0, result.output
    for n in (1, 2, 3):
        assert re.search(rf"^outline\[{n}\]\s+routed\s+-\s+R4\s+R10 granted\s+PASS$", result.stdout, re.MULTILINE)
    cases = ET.parse(junit).getroot().findall("testcase")  # noqa: S314 - our own output
    assert [c.get("name") for c in cases] == ["outline[1]", "outline[2]", "outline[3]"]


def test_junit_carries_each_calls_transcript_with_codes_masked(ivr, scenario, tmp_path):
    """Each JUnit case's system-out holds the prompts, decisions and events, the support code masked."""
    junit = tmp_path / "junit.xml"
    result = ivr("replay", "--in-process", "--junit", junit, scenario("code", SUPPORT_CODE, ["outcome: routed"]))
    assert result.exit_code == 0, result.output
    out = ET.parse(junit).getroot().find("testcase/system-out").text  # noqa: S314 - our own output
    assert "prompt:  enter_code:" in out
    assert "decide:  R4 granted: support code ********01" in out
    assert "event:   #3 ivr.ticket.created" in out
    assert "1234500001" not in out


BAD = [
    pytest.param(["absent: {event: [auth.granted]}"], 8, "absent: unknown key 'event'", id="absent-key"),
    pytest.param(["absent: {events: [auth.grant]}"], 8, "unknown event 'ivr.auth.grant'", id="absent-event"),
    pytest.param(["decisions:", "    - {rule: R22}"], 9, "unknown rule 'R22'", id="decision-rule"),
    pytest.param(
        ["decisions:", "    - {rule: R2, granted: 'false'}"], 9, "'granted' must be true or false", id="granted-type"
    ),
    pytest.param(["events: [{type: ticket.created, dat: {}}]"], 8, "an event is a name or {type", id="event-key"),
]


@pytest.mark.parametrize(("expect", "line", "message"), BAD)
def test_a_wrong_new_key_is_a_file_line_error(ivr, scenario, expect, line, message):
    """A mistake in ``absent``, ``decisions`` or an event mapping is ``file:line: message``, exit 2."""
    path = scenario("bad", SALES, expect)
    result = ivr("replay", "--in-process", path)
    assert result.exit_code == 2, result.output
    error = next(ln for ln in result.stdout.splitlines() if ln.startswith("ERROR"))
    assert error.startswith(f"ERROR {path}:{line}: ")
    assert message in error


def test_an_example_row_without_a_value_names_the_line_that_uses_it(ivr, scenario):
    """A ``${name}`` a row gives no value for is an error at the line that uses it; an unused name at its own line."""
    missing = scenario("missing", ['  - press: "${key}"'], ["outcome: sales"], extra=["examples:", '  - {other: "1"}'])
    result = ivr("replay", "--in-process", missing)
    assert result.exit_code == 2
    assert f"ERROR {missing}:6: examples[1]: 'other' is not used" in result.stdout
    unfilled = scenario(
        "unfilled", ['  - press: "${key}"'], ["outcome: sales"], extra=["examples:", '  - {key: "1"}', "  - {}"]
    )
    result = ivr("replay", "--in-process", unfilled)
    assert result.exit_code == 2
    assert f"ERROR {unfilled}:9: examples[2] has no value for ${{key}}" in result.stdout
