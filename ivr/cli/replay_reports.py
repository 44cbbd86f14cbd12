"""`ivr replay`'s suite-level reports: coverage, and recording or comparing a baseline.

Apart from `ivr.cli.replay` so the command keeps one job (run and show results) and these
options can grow without touching it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ivr.replay.baseline import BaselineError, changes_text, compare, read_baseline, record, write_baseline
from ivr.replay.coverage import measure, write_json
from ivr.replay.coverage_html import write_html

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ivr.replay.baseline import Key
    from ivr.replay.runner import ScenarioResult

__all__ = ["load_baseline", "report_options", "suite_reports"]

EXIT_UNWRITABLE = 2
_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


def report_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of this module, added to a click command."""
    options = (
        click.option("--coverage", is_flag=True, help="After the table, print coverage and every item never reached."),
        click.option(
            "--coverage-json", type=_FILE, metavar="FILE", help="Write coverage as JSON to FILE [default: none]."
        ),
        click.option(
            "--coverage-html",
            type=_DIR,
            metavar="DIR",
            help="Write the flow diagram, covered arrows marked, to DIR [default: none].",
        ),
        click.option(
            "--record",
            "record_to",
            type=_FILE,
            metavar="FILE",
            help="Save every call's ending and route as a baseline [default: none].",
        ),
        click.option(
            "--baseline",
            type=_FILE,
            metavar="FILE",
            help="Report every call that ends differently from FILE (exit 1) [default: none].",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def load_baseline(path: Path | None) -> dict[Key, dict[str, Any]] | None:
    """The baseline to compare with, read before the replay so a bad file stops it at once."""
    if path is None:
        return None
    try:
        return read_baseline(path)
    except BaselineError as exc:
        raise click.UsageError(str(exc)) from exc


def suite_reports(  # noqa: PLR0913 - one keyword per option
    results: Sequence[ScenarioResult],
    roots: Sequence[Path],
    *,
    coverage: bool,
    coverage_json: Path | None,
    coverage_html: Path | None,
    record_to: Path | None,
    baseline: dict[Key, dict[str, Any]] | None,
    baseline_path: Path | None,
    err: bool = False,
) -> bool:
    """Print and write the reports asked for; ``True`` when no call differs from the baseline.

    A file or folder that cannot be written is an error naming it (exit 2), after the table. With
    ``err`` (``--json`` owns standard output) the printed reports go to standard error.
    """
    try:
        if coverage or coverage_json or coverage_html:
            measured = measure(c.record.call for r in results for c in r.calls)
            if coverage:
                click.echo("\n" + measured.text(), err=err)
            if coverage_json:
                write_json(measured, coverage_json)
            if coverage_html:
                click.echo(f"coverage diagram: {write_html(measured, coverage_html)}", err=err)
        calls = record(results, roots) if record_to or baseline is not None else {}
        if record_to:
            write_baseline(record_to, calls)
            click.echo(f"recorded {len(calls)} calls to {record_to}", err=err)
    except OSError as exc:
        click.echo(f"ERROR {exc.filename}: cannot write: {exc.strerror}", err=True)
        sys.exit(EXIT_UNWRITABLE)
    if baseline is None or baseline_path is None:
        return True
    changes = compare(baseline, calls)
    click.echo("\n" + changes_text(changes, baseline_path), err=err)
    return not changes
