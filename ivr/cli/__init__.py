"""The `ivr` command line: one subcommand per module in this package."""

from __future__ import annotations

import click

from ivr import __version__
from ivr.cli.common import Commands
from ivr.cli.diagram import diagram
from ivr.cli.events import events
from ivr.cli.ledger import ledger
from ivr.cli.load import load
from ivr.cli.relay import relay
from ivr.cli.replay import replay
from ivr.cli.scenarios import scenarios
from ivr.cli.serve import serve
from ivr.events import use_schema_base
from ivr.secrets import PepperError, pepper_from_env
from ivr.settings import schema_base_from_env

__all__ = ["main"]


@click.group(cls=Commands, context_settings={"show_default": True})
@click.version_option(__version__, prog_name="ivr")
def main() -> None:
    """ivr: a support line's authorization IVR, simulated.

    Each command's --help says what it does and every option's default. Shell completion:
    eval "$(_IVR_COMPLETE=bash_source ivr)" (zsh_source, fish_source), see the README.
    """
    try:  # checked once here, so a bad pepper is a usage error before any command starts
        pepper_from_env()
    except PepperError as exc:
        raise click.UsageError(str(exc)) from exc
    try:  # and the schemas' base applied once, for every event this process writes
        use_schema_base(schema_base_from_env())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


main.add_command(replay)
main.add_command(scenarios)
main.add_command(ledger)
main.add_command(events)
main.add_command(serve)
main.add_command(diagram)
main.add_command(load)
main.add_command(relay)
