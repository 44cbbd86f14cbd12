"""`ivr ledger`: the ledger consumer as its own process, and its reports.

``ivr ledger`` alone consumes ticket events from the broker until stopped (SIGINT/SIGTERM);
``ivr ledger relay`` publishes its events from a process of its own, beside ``ivr ledger run
--no-announce``; ``balances``, ``history`` and ``verify`` read its SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ivr.bus.base import BusRefusedError, wait_unless_ended
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.shared import SharedSubscriptionsUnavailableError, require_shared_subscriptions
from ivr.bus.url import DEFAULT_BROKER_URL, BrokerConfig, parse_broker_url
from ivr.cli.common import Commands, broker_option, fixture_option, log_options, require_broker
from ivr.cli.relay import POLL, relay_options, run_relay
from ivr.directory.fixtures import load_world
from ivr.directory.relayed import LEDGER_PROGRESS_FILE, RowsQuery
from ivr.directory.sqlite import SqliteDirectory
from ivr.events import TOPIC_ROOT
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.storage import Entry, VerifyReport
from ivr.ledger.store import ANNOUNCEMENT_FUNCTIONS, UNSENT, LedgerFileError, SqliteLedgerStore
from ivr.logs import LogFormat, configure
from ivr.secrets import PepperError, pepper_from_env
from ivr.tables import Terminal, render, terminal_of
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["ledger"]

T = TypeVar("T")

_DEFAULT_DB = Path("var/ledger.db")


@click.group(cls=Commands, invoke_without_command=True)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=_DEFAULT_DB,
    show_default=True,
    envvar="IVR_LEDGER_DB",
    help="The ledger's SQLite file (`ivr ledger run` creates it).",
)
@click.pass_context
def ledger(ctx: click.Context, db: Path) -> None:
    """Run the ledger consumer (no subcommand), or report on its file."""
    ctx.obj = db
    if ctx.invoked_subcommand is None:
        # Parsed as `ivr ledger run` with no arguments, so IVR_BROKER and the option callbacks apply.
        with run.make_context("run", [], parent=ctx) as run_ctx:
            run.invoke(run_ctx)


@ledger.command()
@broker_option(help_text="The broker to consume from.", default=DEFAULT_BROKER_URL)
@fixture_option(
    help_text="Fixture world whose contracts give the opening balances (contracts already in the file keep theirs)."
)
@click.option("--client-id", default="ivr-ledger", show_default=True, help="Fixed MQTT client id (persistent session).")
@click.option("--root", default=TOPIC_ROOT, show_default=True, help="Topic root the IVR publishes under.")
@click.option("--source", default="ivr-ledger", show_default=True, help="This ledger's name in its events.")
@click.option(
    "--share",
    metavar="GROUP",
    help="Take a share of the ticket events with the other ledgers of GROUP (an MQTT shared subscription), "
    "all on the same --db; each needs its own --client-id and --source [default: none, take every event].",
)
@click.option(
    "--announce/--no-announce",
    default=True,
    show_default=True,
    help="Publish the ledger events from this process, or leave them to `ivr ledger relay`. A file "
    "announced by a relay and then by its ledger again gets everything announced again (same event ids).",
)
@log_options(level="info")
@click.pass_obj
def run(  # noqa: PLR0913 - one keyword per option
    db: Path,
    *,
    broker: BrokerConfig | None,
    fixture: Path,
    client_id: str,
    root: str,
    source: str,
    share: str | None,
    announce: bool,
    log_format: LogFormat,
    log_level: str,
) -> None:
    """Consume ticket events and deduct incidents, exactly once, until stopped."""
    configure(fmt=log_format, level=log_level)
    try:
        world = load_world(fixture)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        LedgerConsumer.subscriptions(root, share)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--share") from exc
    config = broker or parse_broker_url(DEFAULT_BROKER_URL)
    require_broker(config)
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot make the folder of the ledger file {db}: {exc.strerror or exc}"
        raise click.ClickException(msg) from exc
    opening = {c.id: c.incidents for c in world.contracts.values()}
    try:
        asyncio.run(
            _consume(db, config, opening, client_id=client_id, root=root, source=source, share=share, announce=announce)
        )
    except SharedSubscriptionsUnavailableError as exc:
        msg = f"--share needs shared subscriptions, and {exc}. Run one ledger without --share instead."
        raise click.ClickException(msg) from exc
    except (LedgerFileError, BusRefusedError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _consume(  # noqa: PLR0913 - the options of `ivr ledger run`
    db: Path,
    config: BrokerConfig,
    opening: dict[str, int | None],
    *,
    client_id: str,
    root: str,
    source: str,
    share: str | None,
    announce: bool,
) -> None:
    if share is not None:
        # Before anything is opened: on a broker without them, --share would consume nothing, silently.
        await require_shared_subscriptions(config, client_id=f"{client_id}-probe", backoff=Backoff())
    store = await SqliteLedgerStore.open(db)
    await store.load_opening(opening)
    bus = MqttBus(
        config=config,
        client_id=client_id,
        instance=source,
        subscriptions=LedgerConsumer.subscriptions(root, share),
        persistent=True,
        manual_ack=True,
        topic_root=root,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with bus:
            service = LedgerService(store=store, source=source)
            consumer = LedgerConsumer(bus=bus, service=service, root=root, announce=announce)
            task = asyncio.create_task(consumer.run())
            try:
                # Until stopped; a consumer that dies (its announcer, its bus) ends the process with its error.
                await wait_unless_ended(stop, task)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await store.close()


@ledger.command(name="relay")
@relay_options(progress_file=LEDGER_PROGRESS_FILE, instance="ivr-ledger-relay")
@log_options(level="info")
@click.pass_obj
def relay_events(  # noqa: PLR0913 - one keyword per option
    db: Path,
    *,
    progress: Path | None,
    broker: BrokerConfig | None,
    root: str,
    instance: str,
    log_format: LogFormat,
    log_level: str,
) -> None:
    """Publish the ledger's events from a process of its own (beside `ivr ledger run --no-announce`).

    It reads the ledger's file and never writes to it: what it has published is a high-water mark
    in its own file, as `ivr relay` keeps for an IVR's outbox.
    """
    configure(fmt=log_format, level=log_level)
    config = broker or parse_broker_url(DEFAULT_BROKER_URL)
    require_broker(config)
    rows = RowsQuery(UNSENT.format(after="rowid > ?"), ANNOUNCEMENT_FUNCTIONS)
    where = progress or db.parent / LEDGER_PROGRESS_FILE
    asyncio.run(run_relay(_existing(db), where, config, root=root, instance=instance, poll=POLL, rows=rows))


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: contract -> {opening, balance, deducted}.")
@click.pass_obj
def balances(db: Path, *, as_json: bool) -> None:
    """Every contract's opening balance, incidents deducted and balance now."""
    rows = _reading(_balances(_existing(db)))
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = [("CONTRACT", "OPENING", "DEDUCTED", "BALANCE")]
    table += [(c, _count(r["opening"]), str(r["deducted"]), _count(r["balance"])) for c, r in rows.items()]
    click.echo(render(table, _stdout()))


async def _balances(db: Path) -> dict[str, dict[str, int | None]]:
    store = await SqliteLedgerStore.open(db)
    try:
        balances, deducted = await store.balances(), await store.deducted()
    finally:
        await store.close()
    return {c: {"opening": o, "balance": b, "deducted": deducted.get(c, 0)} for c, (o, b) in balances.items()}


@ledger.command()
@click.argument("contract")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of the entries, oldest first.")
@click.pass_obj
def history(db: Path, contract: str, *, as_json: bool) -> None:
    """A contract's entries, oldest first."""
    entries = _reading(_history(_existing(db), contract))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no entries for {contract}")
        return
    table = [("APPLIED AT", "OUTCOME", "REASON", "TICKET", "BALANCE AFTER", "EVENT")]
    table += [
        (e.applied_at, e.outcome, e.reason or "-", e.ticket_id, _count(e.balance_after), e.event_id) for e in entries
    ]
    click.echo(render(table, _stdout()))


async def _history(db: Path, contract: str) -> list[Entry]:
    store = await SqliteLedgerStore.open(db)
    try:
        return await store.history(contract)
    finally:
        await store.close()


@ledger.command()
@click.option(
    "--directory",
    "directory_dbs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="An IVR's SQLite file: also check that every deductible ticket it created was applied once "
    "(repeat for IVRs sharing the ledger) [default: none, check the ledger's file alone].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: ok, counts and the problems found.")
@click.pass_obj
def verify(db: Path, directory_dbs: tuple[Path, ...], *, as_json: bool) -> None:
    """Opening balances minus deductions equal today's balances; exit 1 on any mismatch."""
    try:
        report = _reading(_verify(_existing(db), directory_dbs))
    except PepperError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"ok": report.ok, **dataclasses.asdict(report)}, indent=2))
    else:
        _print_verify(report)
    if not report.ok:
        sys.exit(1)


def _print_verify(report: VerifyReport) -> None:
    for problem in report.problems:
        click.echo(f"MISMATCH {problem}")
    verdict = "OK" if report.ok else "FAILED"
    click.echo(
        f"ledger verify: {verdict} ({report.contracts} contracts, {report.deductions} deductions, "
        f"{report.rejections} rejections, {len(report.problems)} problems)"
    )


async def _verify(db: Path, directory_dbs: tuple[Path, ...]) -> VerifyReport:
    expected = None
    for directory_db in directory_dbs:
        directory = await SqliteDirectory.open(directory_db, pepper=pepper_from_env())
        try:
            expected = (expected or []) + [(s, ticket) for s, _, ticket in await directory.deductible_tickets()]
        finally:
            await directory.close()
    store = await SqliteLedgerStore.open(db)
    try:
        return await store.verify(expected)
    finally:
        await store.close()


def _reading(report: Coroutine[None, None, T]) -> T:
    """Run a report on the ledger's file; a file that cannot be used is a clear error, not a traceback."""
    try:
        return asyncio.run(report)
    except LedgerFileError as exc:
        raise click.ClickException(str(exc)) from exc


def _existing(db: Path) -> Path:
    if not db.is_file():
        msg = (
            f"no ledger file at {db}: `ivr ledger --db {db} run` creates one "
            "(or name another with --db or IVR_LEDGER_DB)"
        )
        raise click.ClickException(msg)
    return db


def _count(incidents: int | None) -> str:
    return "unlimited" if incidents is None else str(incidents)


def _stdout() -> Terminal:
    return terminal_of(sys.stdout)
