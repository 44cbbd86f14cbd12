"""Output for people and machines: --json on every report command, tables fitted and coloured only on a terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.tables import PLAIN, Terminal, render

REPO = Path(__file__).resolve().parents[2]
R04 = REPO / "scenarios" / "rules" / "r04_support_code.yaml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def cli(monkeypatch):
    """Run ``ivr ARGS`` in-process (stdout is not a terminal); gives the result."""
    monkeypatch.delenv("IVR_BROKER", raising=False)
    monkeypatch.delenv("IVR_LEDGER_DB", raising=False)
    monkeypatch.delenv("IVR_LEDGER_STORE", raising=False)

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    return run


@pytest.fixture
async def ledger_file(run_call, system, tmp_path):
    """A real ledger file with one deduction: Anna's support code, through the IVR and the ledger."""
    await run_call(["2", "1", "2", "1234500001#", "4"])
    return tmp_path / "ledger.db"


def test_replay_json_is_the_table_and_the_ledger_as_data(cli):
    """`ivr replay --json`: ok, counts, each call's outcome and rule, the ledger's rows and verify."""
    result = cli("replay", "--in-process", "--json", R04)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ok"], report["passed"], report["failed"], report["calls"]) == (True, 1, 0, 1)
    (scenario,) = report["scenarios"]
    (call,) = scenario["calls"]
    assert (call["outcome"], call["rule"], call["passed"], call["deducted"]) == (
        "routed",
        "R4",
        True,
        {"K-ANNA-STD": 1},
    )
    assert call["states"][0] == "main_menu"
    assert scenario["ledger"] == [{"contract": "K-ANNA-STD", "opening": 5, "deducted": 1, "balance": 4}]
    assert scenario["verify"]["ok"] is True
    assert report["unreadable"] == []


def test_replay_json_reports_failures_and_unreadable_files(cli, tmp_path):
    """A failing and an unreadable scenario: exit 2, the failure's text and the file's error in the JSON."""
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(R04.read_text(encoding="utf-8").replace("outcome: routed", "outcome: sales"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n", encoding="utf-8")
    result = cli("replay", "--in-process", "--json", wrong, broken)
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["failed"] == 1
    assert "outcome: expected sales, got routed" in report["scenarios"][0]["calls"][0]["failures"]
    assert report["unreadable"][0]["path"] == str(broken)
    assert "invalid YAML" in report["unreadable"][0]["error"]


def test_ledger_reports_as_json(world, cli, ledger_file):
    """`ivr ledger balances/history/verify --json` on a real ledger file: the deduction, as data."""
    balances = json.loads(cli("ledger", "--db", ledger_file, "balances", "--json").stdout)
    assert balances["K-ANNA-STD"] == {"opening": 5, "balance": 4, "deducted": 1}
    (entry,) = json.loads(cli("ledger", "--db", ledger_file, "history", "K-ANNA-STD", "--json").stdout)
    assert (entry["contract_id"], entry["outcome"], entry["balance_after"]) == ("K-ANNA-STD", "deducted", 4)
    verify = cli("ledger", "--db", ledger_file, "verify", "--json")
    assert verify.exit_code == 0
    assert json.loads(verify.stdout) == {
        "ok": True,
        "contracts": len(world.contracts),
        "deductions": 1,
        "rejections": 0,
        "problems": [],
    }


def test_ledger_tables_are_plain_full_width_text_off_a_terminal(cli, ledger_file):
    """Piped, `balances` and `history` are aligned tables with no colour codes and nothing cut."""
    balances = cli("ledger", "--db", ledger_file, "balances").stdout
    assert re.search(r"^K-ANNA-STD\s+5\s+1\s+4$", balances, re.MULTILINE)
    history = cli("ledger", "--db", ledger_file, "history", "K-ANNA-STD").stdout
    header, row = history.splitlines()
    assert header.split() == ["APPLIED", "AT", "OUTCOME", "REASON", "TICKET", "BALANCE", "AFTER", "EVENT"]
    assert re.search(r"\sdeducted\s+-\s+\d{7}\s+4\s+\S+$", row)
    assert not ANSI.search(balances + history)
    assert "…" not in balances + history


ROWS = [("SCENARIO", "OUTCOME", "RESULT"), ("a_rather_long_scenario_name_indeed", "routed", "PASS"), ("b", "-", "FAIL")]


def test_a_table_off_a_terminal_is_plain_and_whole():
    """PLAIN: columns padded to the widest cell, no colour, nothing cut."""
    lines = render(ROWS, PLAIN).splitlines()
    assert lines[1] == "a_rather_long_scenario_name_indeed  routed   PASS"
    assert not ANSI.search("\n".join(lines))


def test_a_table_on_a_terminal_fits_its_width_and_colours_the_verdicts():
    """On a 30-column terminal every line fits, the widest column is cut with "…", PASS is green and FAIL red."""
    text = render(ROWS, Terminal(width=30, colour=True))
    plain = ANSI.sub("", text)
    assert all(len(line) <= 30 for line in plain.splitlines())
    assert "a_rather_lon…" in plain
    assert click.style("PASS", fg="green", bold=True) in text
    assert click.style("FAIL", fg="red", bold=True) in text
    assert click.style("SCENARIO", bold=True) in text
