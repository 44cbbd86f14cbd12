"""`ivr ledger`: the ledger consumer as its own process, and its reports.

``ivr ledger`` alone consumes ticket events from the broker until stopped (SIGINT/SIGTERM);
``ivr ledger relay`` publishes its events from a process of its own, beside ``ivr ledger run
--no-announce``; ``balances``, ``history`` and ``verify`` read its store: an SQLite file, or the
PostgreSQL database several ledgers share (``--store postgresql://...``).
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

from ivr.bootstrap import ledger_bus, open_ivr_directory, open_ledger_store
from ivr.bus.base import BusRefusedError, wait_unless_ended
from ivr.bus.mqtt import Backoff
from ivr.bus.shared import SharedSubscriptionsUnavailableError, require_shared_subscriptions
from ivr.bus.url import DEFAULT_BROKER_URL, BrokerConfig, parse_broker_url
from ivr.cli.common import Commands, broker_option, fixture_option, log_options, parse_store, require_broker
from ivr.cli.relay import POLL, relay_options, run_relay
from ivr.directory.fixtures import load_world
from ivr.directory.relayed import LEDGER_PROGRESS_FILE
from ivr.events import TOPIC_ROOT
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.storage import Entry, VerifyReport
from ivr.ledger.store import LedgerFileError
from ivr.logs import LogFormat, configure
from ivr.pg import DatabaseUnavailableError
from ivr.secrets import PepperError
from ivr.settings import Settings, read_settings
from ivr.stores import LEDGER_ENV_VAR, Store
from ivr.tables import Terminal, render, terminal_of
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["ledger"]

T = TypeVar("T")

_DEFAULT_DB = "var/ledger.db"


@click.group(cls=Commands, invoke_without_command=True)
@click.option(
    "--store",
    "--db",
    "store",
    default=_DEFAULT_DB,
    show_default=True,
    envvar=[LEDGER_ENV_VAR, "IVR_LEDGER_DB"],
    show_envvar=True,
    callback=parse_store,
    metavar="URL",
    help="The ledger's store: an SQLite file (a path or sqlite:///PATH; `ivr ledger run` creates it), or "
    "postgresql://... shared by every ledger on it.",
)
@click.pass_context
def ledger(ctx: click.Context, store: Store) -> None:
    """Run the ledger consumer (no subcommand), or report on its store."""
    ctx.obj = store
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
    "all on the same --store; each needs its own --client-id and --source [default: none, take every event].",
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
    store: Store,
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
        if store.path is not None:
            store.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot make the folder of the ledger file {store}: {exc.strerror or exc}"
        raise click.ClickException(msg) from exc
    opening = {c.id: c.incidents for c in world.contracts.values()}
    settings = read_settings(broker=config, ledger_store=store, root=root, instance=source)
    try:
        asyncio.run(_consume(settings, opening, client_id=client_id, share=share, announce=announce))
    except SharedSubscriptionsUnavailableError as exc:
        msg = f"--share needs shared subscriptions, and {exc}. Run one ledger without --share instead."
        raise click.ClickException(msg) from exc
    except (LedgerFileError, BusRefusedError, DatabaseUnavailableError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _consume(
    settings: Settings, opening: dict[str, int | None], *, client_id: str, share: str | None, announce: bool
) -> None:
    config, root, source = settings.broker, settings.root, settings.instance
    assert config is not None  # noqa: S101 - `run` resolved the broker
    assert source is not None  # noqa: S101 - and names the ledger
    if share is not None:
        # Before anything is opened: on a broker without them, --share would consume nothing, silently.
        await require_shared_subscriptions(config, client_id=f"{client_id}-probe", backoff=Backoff())
    store = await open_ledger_store(settings)
    await store.load_opening(opening)
    bus = ledger_bus(config, client_id=client_id, root=root, share=share, instance=source)
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
    store: Store,
    *,
    progress: Path | None,
    broker: BrokerConfig | None,
    root: str,
    instance: str,
    log_format: LogFormat,
    log_level: str,
) -> None:
    """Publish the ledger's events from a process of its own (beside `ivr ledger run --no-announce`).

    On SQLite it reads the ledger's file and never writes to it: what it has published is a
    high-water mark in its own file, as `ivr relay` keeps for an IVR's outbox. On PostgreSQL it
    marks the entries published in the database, as a ledger announcing its own events does.
    """
    configure(fmt=log_format, level=log_level)
    config = broker or parse_broker_url(DEFAULT_BROKER_URL)
    require_broker(config)
    settings = read_settings(broker=config, ledger_store=_existing(store), root=root, instance=instance)
    run_relay(settings, progress=progress, poll=POLL, ledger=True)


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: contract -> {opening, balance, deducted}.")
@click.pass_obj
def balances(store: Store, *, as_json: bool) -> None:
    """Every contract's opening balance, incidents deducted and balance now."""
    rows = _reading(_balances(read_settings(ledger_store=_existing(store))))
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = [("CONTRACT", "OPENING", "DEDUCTED", "BALANCE")]
    table += [(c, _count(r["opening"]), str(r["deducted"]), _count(r["balance"])) for c, r in rows.items()]
    click.echo(render(table, _stdout()))


async def _balances(settings: Settings) -> dict[str, dict[str, int | None]]:
    store = await open_ledger_store(settings)
    try:
        balances, deducted = await store.balances(), await store.deducted()
    finally:
        await store.close()
    return {c: {"opening": o, "balance": b, "deducted": deducted.get(c, 0)} for c, (o, b) in balances.items()}


@ledger.command()
@click.argument("contract")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of the entries, oldest first.")
@click.pass_obj
def history(store: Store, contract: str, *, as_json: bool) -> None:
    """A contract's entries, oldest first."""
    entries = _reading(_history(read_settings(ledger_store=_existing(store)), contract))
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


async def _history(settings: Settings, contract: str) -> list[Entry]:
    store = await open_ledger_store(settings)
    try:
        return await store.history(contract)
    finally:
        await store.close()


def _parse_directories(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Store, ...]:
    """``--directory`` values as stores; an SQLite one must exist (verify reads, never creates)."""
    stores = tuple(store for value in values if (store := parse_store(ctx, param, value)) is not None)
    for store in stores:
        if store.path is not None and not store.path.is_file():
            msg = f"no IVR directory file at {store.path}"
            raise click.BadParameter(msg, ctx=ctx, param=param)
    return stores


@ledger.command()
@click.option(
    "--directory",
    "directories",
    multiple=True,
    callback=_parse_directories,
    metavar="URL",
    help="An IVR's store (its SQLite file, or postgresql://...): also check that every deductible ticket it "
    "created was applied once (repeat for IVRs with stores of their own) [default: none, the ledger's alone].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: ok, counts and the problems found.")
@click.pass_obj
def verify(store: Store, directories: tuple[Store, ...], *, as_json: bool) -> None:
    """Opening balances minus deductions equal today's balances; exit 1 on any mismatch."""
    try:
        report = _reading(_verify(read_settings(ledger_store=_existing(store)), directories))
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


async def _verify(settings: Settings, directories: tuple[Store, ...]) -> VerifyReport:
    expected = None
    for named in directories:
        directory = await open_ivr_directory(settings, named)
        try:
            expected = (expected or []) + [(s, ticket) for s, _, ticket in await directory.deductible_tickets()]
        finally:
            await directory.close()
    store = await open_ledger_store(settings)
    try:
        return await store.verify(expected)
    finally:
        await store.close()


def _reading(report: Coroutine[None, None, T]) -> T:
    """Run a report on the ledger's store; a store that cannot be used is a clear error, not a traceback."""
    try:
        return asyncio.run(report)
    except (LedgerFileError, DatabaseUnavailableError) as exc:
        raise click.ClickException(str(exc)) from exc


def _existing(store: Store) -> Store:
    """``store``, if it is PostgreSQL or an SQLite file that exists (a report never creates one)."""
    if store.path is not None and not store.path.is_file():
        msg = (
            f"no ledger file at {store.path}: `ivr ledger --store {store.path} run` creates one "
            f"(or name another with --store or {LEDGER_ENV_VAR})"
        )
        raise click.ClickException(msg)
    return store


def _count(incidents: int | None) -> str:
    return "unlimited" if incidents is None else str(incidents)


def _stdout() -> Terminal:
    return terminal_of(sys.stdout)
