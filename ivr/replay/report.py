"""How replay results are shown: a table, failure details, call traces, JSON and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from ivr.auth.decisions import Rule
from ivr.secrets import scrub
from ivr.tables import PLAIN, Terminal, render

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ivr.auth.decisions import Decision
    from ivr.replay.runner import LoadFailure, ScenarioResult

__all__ = [
    "failures_text",
    "junit_xml",
    "ledger_text",
    "report_json",
    "rule_summary",
    "summary_line",
    "table",
    "trace_text",
]


def _label(result: ScenarioResult, index: int) -> str:
    name = result.scenario.label
    return name if len(result.calls) == 1 else f"{name} #{index + 1}"


def _decided(decision: Decision) -> str:
    """``R2 denied ticket_closed`` or ``R4 granted``."""
    return f"{decision.rule} granted" if decision.granted else f"{decision.rule} denied {decision.reason}"


def table(results: Sequence[ScenarioResult], load_failures: Sequence[LoadFailure], terminal: Terminal = PLAIN) -> str:
    """One row per call: how it ended, the last decision made in it, PASS/FAIL; unreadable files as ERROR rows.

    The last decision is what a scenario is usually written to check: a denial stays visible even
    when the caller then hangs up and the call ends ``abandoned``.
    """
    rows = [("SCENARIO", "OUTCOME", "REASON", "RULE", "LAST DECISION", "RESULT")]
    for result in results:
        if result.error:
            rows.append((result.scenario.label, "-", "-", "-", "-", "ERROR"))
        for i, call in enumerate(result.calls):
            c = call.record.call
            rows.append(
                (
                    _label(result, i),
                    c.outcome or "-",
                    c.reason or "-",
                    c.rule or "-",
                    _decided(c.decisions[-1]) if c.decisions else "-",
                    "FAIL" if call.failures else "PASS",
                ),
            )
    rows.extend((f.path.name, "-", "-", "-", "-", "ERROR") for f in load_failures)
    return render(rows, terminal)


def rule_summary(results: Sequence[ScenarioResult], terminal: Terminal = PLAIN) -> str:
    """Per rule: the scenarios in which it decided something or ended a call, and how many passed."""
    seen: dict[str, list[bool]] = {}
    for result in results:
        rules = {str(c.record.call.rule) for c in result.calls if c.record.call.rule is not None}
        rules.update(str(d.rule) for c in result.calls for d in c.record.call.decisions)
        for rule in rules:
            seen.setdefault(rule, []).append(result.passed)
    order = [str(r) for r in Rule]
    rows = [("RULE", "SCENARIOS", "PASSED")]
    rows.extend((rule, str(len(seen[rule])), str(sum(seen[rule]))) for rule in order if rule in seen)
    return render(rows, terminal)


def failures_text(results: Sequence[ScenarioResult], load_failures: Sequence[LoadFailure]) -> str:
    """For each failure: expected against actual, and the path of states the call took."""
    out: list[str] = []
    for result in results:
        if result.error:
            out.append(f"ERROR {result.scenario.path}: {result.error}")
        for i, call in enumerate(result.calls):
            if not call.failures:
                continue
            line = f":{call.spec.expect.line}" if call.spec.expect.line else ""
            out.append(f"FAIL {result.scenario.path}{line} ({_label(result, i)}: {result.scenario.name})")
            out.extend(f"  - {f}" for f in call.failures)
            out.append(f"  path: {' -> '.join(call.record.call.path)}")
    out.extend(f"ERROR {f.error}" for f in load_failures)
    for result in results:
        if result.verify is not None and not result.verify.ok:
            out.append(f"LEDGER {result.scenario.path}: verify failed")
            out.extend(f"  - {p}" for p in result.verify.problems)
    return scrub("\n".join(out))


def ledger_text(results: Sequence[ScenarioResult], terminal: Terminal = PLAIN) -> str:
    """Each scenario's ledger: the contracts it touched (opening, deducted, balance), then verify."""
    rows = [("SCENARIO", "CONTRACT", "OPENING", "DEDUCTED", "BALANCE")]
    for result in results:
        for row in result.ledger:
            opening = "unlimited" if row.opening is None else str(row.opening)
            balance = "unlimited" if row.balance is None else str(row.balance)
            rows.append((result.scenario.label, row.contract, opening, str(row.deducted), balance))
    lines = [render(rows, terminal)]
    reports = [r.verify for r in results if r.verify is not None]
    bad = sum(1 for v in reports if not v.ok)
    lines.append(
        f"\nledger verify: {'OK' if not bad else 'FAILED'} ({len(reports)} ledgers, "
        f"{sum(v.deductions for v in reports)} deductions, {sum(v.rejections for v in reports)} rejections, "
        f"{bad} with problems)"
    )
    return "\n".join(lines)


def report_json(
    results: Sequence[ScenarioResult], load_failures: Sequence[LoadFailure], seconds: float
) -> dict[str, Any]:
    """Everything the table, the failures and ``--ledger`` show, as JSON-able data (``ivr replay --json``)."""
    scenarios = [
        {
            "path": str(result.scenario.path),
            "name": result.scenario.name,
            "example": result.scenario.example,
            "passed": result.passed,
            "error": None if result.error is None else scrub(result.error),
            "seconds": round(result.seconds, 3),
            "calls": [
                {
                    "outcome": call.record.call.outcome,
                    "reason": call.record.call.reason,
                    "rule": call.record.call.rule,
                    "last_decision": _decided(call.record.call.decisions[-1]) if call.record.call.decisions else None,
                    "passed": not call.failures,
                    "failures": [scrub(f) for f in call.failures],
                    "states": list(call.record.call.path),
                    "deducted": call.deducted,
                }
                for call in result.calls
            ],
            "ledger": [
                {"contract": row.contract, "opening": row.opening, "deducted": row.deducted, "balance": row.balance}
                for row in result.ledger
            ],
            "verify": None
            if result.verify is None
            else {
                "ok": result.verify.ok,
                "deductions": result.verify.deductions,
                "rejections": result.verify.rejections,
                "problems": result.verify.problems,
            },
        }
        for result in results
    ]
    passed = sum(1 for r in results if r.passed)
    return {
        "ok": passed == len(results) and not load_failures,
        "passed": passed,
        "failed": len(results) - passed,
        "calls": sum(len(r.calls) for r in results),
        "seconds": round(seconds, 3),
        "scenarios": scenarios,
        "unreadable": [{"path": str(f.path), "error": scrub(str(f.error))} for f in load_failures],
    }


def trace_text(results: Sequence[ScenarioResult]) -> str:
    """Each call's states, prompts and events, in order."""
    return "\n".join(_transcript(result, header=True) for result in results)


def _transcript(result: ScenarioResult, *, header: bool) -> str:
    """One scenario's calls: states, prompts, decisions, events and deductions.

    What the call said and did is scrubbed of codes and keys; the headings are not, since a file
    name or a call id may hold a long digit run (``r04_20261117.yaml``) that is no secret.
    """
    out: list[str] = []
    if header:
        example = f" (example {result.scenario.example})" if result.scenario.example else ""
        out.append(f"== {result.scenario.path}{example} - {scrub(result.scenario.name)}")
    for i, call in enumerate(result.calls):
        c = call.record.call
        out.append(f"-- call {i + 1} {c.id} from {c.caller} at {c.started_at.isoformat()}")
        said = [f"   states:  {' -> '.join(c.path)}"]
        said.extend(f"   prompt:  {h.name}: {h.text}" for h in call.record.heard)
        said.extend(f"   decide:  {_decided(d)}: {d.detail}" for d in c.decisions)
        said.extend(
            f"   event:   #{e.sequence} {e.type} {json.dumps(e.data, separators=(',', ':'))}"
            for e in call.record.events
        )
        if call.deducted:
            said.append(f"   ledger:  deducted {call.deducted}")
        out.extend(scrub(line) for line in said)
    return "\n".join(out)


def summary_line(results: Sequence[ScenarioResult], load_failures: Sequence[LoadFailure], seconds: float) -> str:
    """The closing line: scenarios passed and failed, errors, and the time taken."""
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    calls = sum(len(r.calls) for r in results)
    errors = f", {len(load_failures)} unreadable" if load_failures else ""
    return f"{passed} passed, {failed} failed{errors} ({len(results)} scenarios, {calls} calls, {seconds:.2f}s)"


def junit_xml(results: Sequence[ScenarioResult], load_failures: Sequence[LoadFailure], path: Path) -> None:
    """Write JUnit XML: a test case per scenario (per row of its examples), a failure per unmet expectation.

    Each case's ``system-out`` is its calls' transcript, as ``--trace`` prints it, codes and keys masked.
    """
    suite = ET.Element(
        "testsuite",
        name="ivr-replay",
        tests=str(len(results) + len(load_failures)),
        failures=str(sum(1 for r in results if not r.passed and not r.error)),
        errors=str(len(load_failures) + sum(1 for r in results if r.error)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=str(result.scenario.path.parent),
            name=result.scenario.label,
            time=f"{result.seconds:.3f}",
        )
        if result.error:
            ET.SubElement(case, "error", message=scrub(result.error))
        lines = [scrub(f"call {i + 1}: {f}") for i, c in enumerate(result.calls) for f in c.failures]
        if lines:
            ET.SubElement(case, "failure", message=lines[0]).text = "\n".join(lines)
        if result.calls:
            ET.SubElement(case, "system-out").text = _transcript(result, header=False)
    for failure in load_failures:
        case = ET.SubElement(suite, "testcase", classname=str(failure.path.parent), name=failure.path.stem)
        ET.SubElement(case, "error", message=scrub(str(failure.error)))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
