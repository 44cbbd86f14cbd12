"""`ivr scenarios`: tools that write scenario files (today: ``generate`` for what a suite misses)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ivr.cli.common import fixture_option
from ivr.directory.fixtures import load_world
from ivr.logs import configure
from ivr.replay.coverage import Coverage, measure
from ivr.replay.generate import plan, write_candidates
from ivr.replay.runner import replay
from ivr.replay.scenario import discover
from ivr.yamlsrc import SourceError

__all__ = ["scenarios"]

EXIT_DISAGREE = 1
EXIT_UNREADABLE = 2
#: What ``generate`` writes scenarios for: the flow's rows and its counters.
TARGETS = ("transitions", "counters")


@click.group()
def scenarios() -> None:
    """Write scenario files."""


@scenarios.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--missing", is_flag=True, help="Only for what the suite in PATHS (default ./scenarios) never reaches.")
@fixture_option(help_text="The fixture world the scenarios run against.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write into.")
def generate(paths: tuple[Path, ...], *, missing: bool, fixture: Path, out: Path) -> None:
    """Write a scenario for each transition row and counter state (with --missing: each the suite misses).

    Expectations come from the rules applied to the fixture world, not from a run; the candidates
    are replayed in-process only to pick the few that reach each item. Exit 1 if a candidate's
    run disagrees with what the rules imply (a flow or rule bug, or a generator one), 2 on
    unreadable input.
    """
    configure(fmt="console", level="warning")
    if paths and not missing:
        msg = "PATHS name the suite whose gaps --missing fills: give --missing with them"
        raise click.UsageError(msg)
    try:
        world = load_world(fixture)
    except SourceError as exc:
        click.echo(f"ERROR {exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    targets = _targets(paths, missing=missing)
    chosen = asyncio.run(plan(world, fixture, targets))
    try:
        written = write_candidates([c for c, _ in chosen.chosen], out, fixture)
    except OSError as exc:
        click.echo(f"ERROR {out}: cannot write: {exc.strerror}", err=True)
        sys.exit(EXIT_UNREADABLE)
    click.echo(f"wrote {len(written)} scenarios to {out} for {len(targets) - len(chosen.unreached)} items")
    for path, (_, items) in zip(written, chosen.chosen, strict=True):
        click.echo(f"  {path.name}: {', '.join(items)}")
    for item in chosen.unreached:
        click.echo(f"cannot reach with this fixture world: {item}")
    for candidate in chosen.disagreements:
        click.echo(f"DISAGREE {candidate.name}: {'; '.join(candidate.disagreement)}")
    if chosen.disagreements:
        sys.exit(EXIT_DISAGREE)


def _targets(paths: tuple[Path, ...], *, missing: bool) -> list[str]:
    """``category: item`` for every transition and counter, or (``missing``) each the suite never reaches."""
    coverage = Coverage()
    if missing:
        results, unreadable = asyncio.run(replay(discover(list(paths) or [Path("scenarios")])))
        for failure in unreadable:
            click.echo(f"ERROR {failure.error}", err=True)
        if unreadable:
            sys.exit(EXIT_UNREADABLE)
        coverage = measure(c.record.call for r in results for c in r.calls)
    return [
        f"{name}: {item}"
        for name in TARGETS
        for item in (coverage.category(name).missing if missing else coverage.category(name).items)
    ]
