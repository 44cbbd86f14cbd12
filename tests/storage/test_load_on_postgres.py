"""`ivr load --workers 2 --store postgresql://...`: two IVR processes and the ledger on one database, exactly once."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from ivr.cli import main
from tests.storage.test_replay_on_postgres import replay_schemas


def test_two_workers_on_postgresql_deduct_each_ticket_once_with_one_sqlite_process_outcomes(
    private_broker, postgres_url, tmp_path
):
    """Every call made once, dealt by the database (no call file); verify passes; one SQLite process's outcomes."""
    argv = ["load", "--calls", "300", "--customers", "40", "--json", "--seed", "7", "--no-progress"]
    argv += ["--broker", private_broker.config.url]
    runner = CliRunner(env={"IVR_STORE": None})
    workdir = tmp_path / "shared"
    shared = runner.invoke(main, [*argv, "--workers", "2", "--store", postgres_url, "--workdir", str(workdir)])
    assert shared.exit_code == 0, shared.output
    report = json.loads(shared.stdout)
    assert report["ok"]
    assert report["exactly_once"]
    assert report["verify"]["ok"]
    assert report["completed"] == sum(w["calls"] for w in report["workers"]) == 300
    assert not (workdir / "calls.db").exists()
    assert report["deducted"] == report["deductible"] == report["verify"]["deductions"] > 0
    assert asyncio.run(replay_schemas(postgres_url, prefix="load_")) == []  # the run's schema is dropped
    alone = runner.invoke(main, [*argv, "--workdir", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    one = json.loads(alone.stdout)
    assert (report["plan_digest"], report["outcome_digest"]) == (one["plan_digest"], one["outcome_digest"])
