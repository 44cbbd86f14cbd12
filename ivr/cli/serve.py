"""`ivr serve`: the trainer console, a web page where a trainee walks a call on a phone keypad."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ivr.bootstrap import CONSOLE
from ivr.bus.url import BrokerConfig
from ivr.cli.common import broker_option, fixture_option, log_options, require_broker, store_option
from ivr.logs import LogFormat, configure
from ivr.settings import read_settings
from ivr.stores import ENV_VAR, Store
from ivr.yamlsrc import SourceError

__all__ = ["serve"]

EXIT_UNREADABLE = 2


def _console_name(_: click.Context, __: click.Parameter, value: str) -> str:
    """Click callback: a name the console's session worlds can be named under, or a usage error saying why not."""
    from ivr.web.worlds import check_console  # noqa: PLC0415 - the web stack loads only for this command

    try:
        return check_console(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@fixture_option(help_text="The fixture world whose personas the trainees call as.")
@broker_option(help_text="Broker the calls' events cross.")
@click.option(
    "--ledger",
    "ledger_mode",
    type=click.Choice(["own", "external"]),
    default="own",
    show_default=True,
    help="own: each session world gets a ledger of its own; external: an `ivr ledger` process on --broker deducts.",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A scenario file to play back on the diagram, step by step, on every page that opens [default: none].",
)
@store_option(
    envvar=ENV_VAR,
    help_text="Where each session world lives: postgresql://... (a schema per world, dropped when it ends) "
    "[default: SQLite files in a temporary folder].",
)
@click.option(
    "--instance",
    default=CONSOLE,
    show_default=True,
    callback=_console_name,
    help="The console's client id on the broker (one connection for every session world), and its status name.",
)
@log_options(level="warning")
def serve(  # noqa: PLR0913 - one keyword per option
    *,
    host: str,
    port: int,
    fixture: Path,
    broker: BrokerConfig | None,
    ledger_mode: str,
    scenario: Path | None,
    store: Store | None,
    instance: str,
    log_format: LogFormat,
    log_level: str,
) -> None:
    """Serve the trainer console: pick a persona, call, press keys, watch the flow, rules and events.

    Each call runs the same flow, rules, events and ledger as `ivr replay`, in the page's session
    world (kept across its calls; shared by pages opened with ?session=NAME), and can be saved as
    a scenario file that `ivr replay` passes, or as a printable transcript.
    """
    import uvicorn  # noqa: PLC0415 - the web stack loads only for this command

    from ivr.web.app import create_app  # noqa: PLC0415 - same

    configure(fmt=log_format, level=log_level)
    if ledger_mode == "external" and broker is None:
        click.echo("ERROR --ledger external needs --broker (or IVR_BROKER): where the ledger listens", err=True)
        sys.exit(EXIT_UNREADABLE)
    try:
        app = create_app(
            fixture=fixture,
            settings=read_settings(broker=broker, store=store, instance=instance),
            own_ledger=ledger_mode == "own",
            scenario=scenario,
        )
    except SourceError as exc:
        click.echo(f"ERROR {exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    if broker is not None:
        require_broker(broker)
    click.echo(f"trainer console on http://{host}:{port}/ (fixture {fixture}); Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
