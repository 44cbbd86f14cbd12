"""`ivr load`: many seeded calls through the real system over a real broker, and what they measured."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from ivr.bus.url import BrokerConfig
from ivr.cli.common import broker_option, require_broker, store_option
from ivr.collector import paced_collection
from ivr.events import TOPIC_ROOT
from ivr.load.mix import default_mix, load_mix
from ivr.load.plan import MAX_CALLS
from ivr.load.report import Progress
from ivr.load.runner import LoadError, LoadOptions, run_load
from ivr.load.workers import WorkerError, run_workers
from ivr.load.world import synthetic_world, write_fixture
from ivr.logs import configure
from ivr.pg import DatabaseUnavailableError
from ivr.settings import read_settings
from ivr.stores import ENV_VAR, Store, in_schema, scratch_schema
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from ivr.load.report import LoadReport

__all__ = ["ProgressLine", "load"]

_BAR = 24


class ProgressLine:
    """The progress bar on stderr: rewritten in place on a terminal, a line every few ticks otherwise."""

    def __init__(self, stream: TextIO, *, every: int = 10) -> None:
        """Write to ``stream``; off a terminal, one line per ``every`` updates."""
        self._stream = stream
        self._tty = stream.isatty()
        self._every = every
        self._ticks = 0
        self._last = (0.0, 0)

    def __call__(self, progress: Progress) -> None:
        """Show ``progress``: calls done, live, and calls/s over the last interval."""
        seconds, done = progress.seconds, progress.completed
        then, before = self._last
        rate = (done - before) / (seconds - then) if seconds > then else 0.0
        self._last = (seconds, done)
        self._ticks += 1
        filled = int(_BAR * done / progress.calls) if progress.calls else _BAR
        line = (
            f"[{'#' * filled}{'.' * (_BAR - filled)}] {done:,}/{progress.calls:,} calls  "
            f"{progress.live:,} live  {rate:,.0f} calls/s  {progress.answered:,} ledger answers  {seconds:.0f} s"
        )
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
        elif self._ticks % self._every == 0:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the line on a terminal."""
        if self._tty and self._ticks:
            self._stream.write("\n")
            self._stream.flush()


def _parse_shard(_: click.Context, __: click.Parameter, value: str | None) -> tuple[int, int]:
    """``K/N`` to ``(K, N)``; none given is the whole run, ``(0, 1)``."""
    if value is None:
        return (0, 1)
    try:
        shard, shards = (int(part) for part in value.split("/"))
    except ValueError:
        msg = f"expected K/N, not {value!r}"
        raise click.BadParameter(msg) from None
    if not 0 <= shard < shards:
        msg = f"worker {shard} of {shards} does not exist"
        raise click.BadParameter(msg)
    return (shard, shards)


@click.command()
@click.option(
    "--calls",
    type=click.IntRange(min=1, max=MAX_CALLS),
    help="How many calls to make, each from its own number (required but with --write-world).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Calls started per second; 0 starts them as fast as --concurrency allows.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Calls live at once at most [default: 500; with --realtime, no limit].",
)
@click.option(
    "--mix",
    "mix_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Persona mix (YAML weights per kind of call) [default: the shipped ivr/load/mix.yaml].",
)
@broker_option(help_text="Broker to run over.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed makes the same world and calls.")
@click.option("--realtime", is_flag=True, help="Live callers on the real clock: calls take their human duration.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--ledger-running",
    is_flag=True,
    help="An `ivr ledger` already consumes from the broker (started with --fixture from --write-world).",
)
@click.option(
    "--ledger-db",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The ledger's SQLite file, for verify [default: WORKDIR/ledger.db of the ledger this run starts].",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the run's files here (world.yaml, ivr.db, ledger.db, ledger.log) [default: a temporary folder].",
)
@click.option("--root", default=TOPIC_ROOT, show_default=True, help="Topic root to publish under.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="IVR processes sharing the calls, each with its own relay (on SQLite) and one ledger.",
)
@click.option("--shard", callback=_parse_shard, hidden=True, help="K/N: run as worker K of N (set by --workers).")
@click.option(
    "--calls-from",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    hidden=True,
    help="The call file the workers take their calls from (set by --workers).",
)
@click.option(
    "--relay/--no-relay",
    default=None,
    help="Publish the IVR's outbox from `ivr relay`, a process of its own, or from a task in the IVR "
    "[default: the relay as fast as possible, the task in real time (docs/performance.md)].",
)
@store_option(
    envvar=ENV_VAR,
    help_text="postgresql://...: the IVRs and the ledger share this database (the run's own schema, dropped "
    "after it); each IVR publishes its own outbox, with no `ivr relay` [default: SQLite files in --workdir].",
)
@click.option("--customers", type=click.IntRange(min=10), default=300, show_default=True, help="Size of the world.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar on stderr.")
@click.option(
    "--write-world",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Only write the run's world (from --seed and --customers) as a fixture file and exit: "
    "for an `ivr ledger --fixture FILE` started before a --ledger-running run [default: none, run the calls].",
)
def load(  # noqa: PLR0913 - one keyword per option
    *,
    calls: int | None,
    rate: float,
    concurrency: int | None,
    mix_file: Path | None,
    broker: BrokerConfig | None,
    seed: int,
    realtime: bool,
    as_json: bool,
    ledger_running: bool,
    ledger_db: Path | None,
    workdir: Path | None,
    root: str,
    workers: int,
    shard: tuple[int, int],
    calls_from: Path | None,
    relay: bool | None,
    store: Store | None,
    customers: int,
    progress: bool,
    write_world: Path | None,
) -> None:
    """Generate calls from a persona mix through the real flow and report throughput and latency.

    The IVR runs here; `ivr ledger` runs as its own process on its own SQLite file, or on the
    database --store names (unless --ledger-running), and `ivr relay` publishes the IVR's outbox
    (unless --no-relay; on PostgreSQL each IVR publishes its own). Exit
    status 0 when every call completed and the ledger deducted exactly once (`ivr ledger verify`
    passes), 1 otherwise.
    """
    configure(level="error")
    if write_world is not None:
        write_fixture(synthetic_world(seed=seed, customers=customers), write_world)
        click.echo(f"wrote the world of seed {seed} ({customers} customers) to {write_world}")
        return
    if calls is None:
        msg = "Missing option '--calls'."
        raise click.UsageError(msg)
    try:
        mix = load_mix(mix_file) if mix_file else default_mix()
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    if shard[1] > 1 and calls_from is None and (store is None or store.dsn is None):
        msg = "--shard needs --calls-from (or --store postgresql://...): the workers share where their calls are dealt"
        raise click.UsageError(msg)
    _check_broker(broker, ledger_running=ledger_running)
    if store is not None and store.dsn is None:
        msg = "ivr load keeps SQLite files in --workdir; --store takes a postgresql:// URL"
        raise click.BadParameter(msg, param_hint="--store")
    options = LoadOptions(
        calls=calls,
        rate=rate,
        concurrency=concurrency,
        mix=mix,
        seed=seed,
        realtime=realtime,
        ledger_running=ledger_running,
        ledger_db=ledger_db,
        workdir=workdir,
        customers=customers,
        relay=not realtime if relay is None else relay,
        shard=shard,
        calls_from=calls_from,
        settings=read_settings(broker=broker, store=store, root=root),
    )
    line = ProgressLine(sys.stderr) if progress else None
    try:
        report = asyncio.run(_in_own_schema(options, workers=workers, mix_path=mix_file, line=line))
    except (LoadError, WorkerError) as exc:
        raise click.ClickException(str(exc)) from exc
    except DatabaseUnavailableError as exc:
        raise click.ClickException(f"{exc}; start it, or name another with --store URL or {ENV_VAR}") from exc
    finally:
        if line is not None:
            line.close()
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.text())
    if not report.ok:
        sys.exit(1)


def _check_broker(broker: BrokerConfig | None, *, ledger_running: bool) -> None:
    """A broker given must answer now; a ledger already running needs one (a private broker has none)."""
    if broker is not None:
        require_broker(broker)
    elif ledger_running:
        msg = "--ledger-running needs --broker: a private broker has no ledger on it"
        raise click.UsageError(msg)


async def _in_own_schema(
    options: LoadOptions, *, workers: int, mix_path: Path | None, line: ProgressLine | None
) -> LoadReport:
    """Run the load; on PostgreSQL in a schema of the run's own (a worker, ``--shard``, is given its run's by URL)."""
    store = options.settings.store
    if store is None or options.shard[1] > 1:
        return await _run(options, workers=workers, mix_path=mix_path, line=line)
    async with scratch_schema(store, "load") as schema:
        settings = dataclasses.replace(options.settings, store=in_schema(store, schema))
        options = dataclasses.replace(options, settings=settings)
        return await _run(options, workers=workers, mix_path=mix_path, line=line)


async def _run(options: LoadOptions, *, workers: int, mix_path: Path | None, line: ProgressLine | None) -> LoadReport:
    if workers > 1:
        return await run_workers(options, workers=workers, mix_path=mix_path)
    async with paced_collection():  # thousands of live calls: the collector paced by the loop (ivr/collector.py)
        return await run_load(options, on_progress=line)
