"""`ivr replay`: run scenario files and folders, and say which passed."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ivr.bus.url import BrokerConfig
from ivr.cli.common import broker_option, log_options, replay_broker, require_broker, store_option
from ivr.cli.replay_reports import load_baseline, report_options, suite_reports
from ivr.logs import LogFormat, configure
from ivr.pg import DatabaseUnavailableError
from ivr.replay.report import (
    failures_text,
    junit_xml,
    ledger_text,
    report_json,
    rule_summary,
    summary_line,
    table,
    trace_text,
)
from ivr.replay.runner import LoadFailure, ScenarioResult
from ivr.replay.runner import replay as run_replay
from ivr.replay.scenario import discover
from ivr.settings import read_settings
from ivr.stores import ENV_VAR, Store
from ivr.tables import terminal_of

__all__ = ["replay"]

EXIT_FAILED = 1
EXIT_UNREADABLE = 2
DEFAULT_FOLDER = Path("scenarios")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--trace", is_flag=True, help="Print each call's states, prompts, decisions and events.")
@click.option("--junit", "junit", type=click.Path(path_type=Path), help="Write JUnit XML to this file [default: none].")
@log_options(level="warning")
@broker_option(help_text="Broker to send every event through (none with --in-process).")
@click.option("--ledger", "show_ledger", is_flag=True, help="Print each scenario's ledger balances and verify.")
@click.option("--in-process", is_flag=True, help="No broker: call the ledger directly (for machines without one).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object instead of the table.")
@store_option(
    envvar=ENV_VAR,
    help_text="Where each scenario's IVR and ledger keep their state: postgresql://... (a schema per scenario, "
    "dropped after it), or an SQLite folder that keeps each scenario's files [default: SQLite files in a "
    "temporary folder].",
)
@report_options
def replay(  # noqa: PLR0913 - one keyword per option
    paths: tuple[Path, ...],
    *,
    trace: bool,
    junit: Path | None,
    log_format: LogFormat,
    log_level: str,
    broker: BrokerConfig | None,
    in_process: bool,
    show_ledger: bool,
    as_json: bool,
    store: Store | None,
    baseline: Path | None,
    **reports: Any,  # noqa: ANN401 - ivr.cli.replay_reports's options, passed on whole
) -> None:
    """Replay scenario files (default: ./scenarios); exit 1 on a failure, 2 on unreadable input.

    Every event crosses a real MQTT broker to the ledger, which deducts incidents; each call waits
    for the ledger's answer before the next, so expect.deducted can be checked.
    """
    configure(fmt=log_format, level=log_level)
    if not paths and not DEFAULT_FOLDER.is_dir():
        msg = f"no ./{DEFAULT_FOLDER} folder here: give scenario files or folders (ivr replay PATH...)"
        raise click.UsageError(msg)
    if broker is not None and not in_process:
        require_broker(broker)
    _require_empty_folder(store)
    before = load_baseline(baseline)
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        click.echo(f"ERROR {path}: no such file or folder", err=True)
    roots = [p for p in paths if p.exists()] or ([] if paths else [DEFAULT_FOLDER])
    files = discover(roots)

    async def run() -> tuple[list[ScenarioResult], list[LoadFailure]]:
        async with replay_broker(broker, in_process=in_process) as config:
            return await run_replay(files, settings=read_settings(broker=config, store=store))

    started = time.perf_counter()
    try:
        results, unreadable = asyncio.run(run())
    except DatabaseUnavailableError as exc:
        raise click.ClickException(f"{exc}; start it, or name another with --store URL or {ENV_VAR}") from exc
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(report_json(results, unreadable, seconds), indent=2))
    else:
        _print(results, unreadable, seconds, trace=trace, show_ledger=show_ledger)
    if junit:
        junit_xml(results, unreadable, junit)
    same = suite_reports(results, roots, baseline=before, baseline_path=baseline, err=as_json, **reports)
    if unreadable or missing:
        sys.exit(EXIT_UNREADABLE)
    if not all(r.passed for r in results) or not same:
        sys.exit(EXIT_FAILED)


def _require_empty_folder(store: Store | None) -> None:
    """An SQLite --store is a folder each scenario's files go in: files of an earlier run would clash."""
    if store is not None and store.path is not None and store.path.exists() and any(store.path.iterdir()):
        msg = f"{store.path} is not empty: give a new or empty folder for the scenarios' SQLite files"
        raise click.BadParameter(msg, param_hint="--store")


def _print(
    results: list[ScenarioResult], unreadable: list[LoadFailure], seconds: float, *, trace: bool, show_ledger: bool
) -> None:
    terminal = terminal_of(sys.stdout)
    if trace:
        click.echo(trace_text(results))
    click.echo(table(results, unreadable, terminal))
    if results:
        click.echo("\n" + rule_summary(results, terminal))
    details = failures_text(results, unreadable)
    if details:
        click.echo("\n" + details)
    if show_ledger:
        click.echo("\n" + ledger_text(results, terminal))
    click.echo("\n" + summary_line(results, unreadable, seconds))
