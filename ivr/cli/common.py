"""Options and helpers the `ivr` subcommands share."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import click

from ivr.bus.broker import embedded_broker
from ivr.bus.url import BrokerConfig, BrokerUrlError, parse_broker_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["broker_option", "parse_broker", "replay_broker"]


def parse_broker(_: click.Context, __: click.Parameter, value: str | None) -> BrokerConfig | None:
    """Click callback: a broker URL to a config; a bad URL is a usage error (password never shown)."""
    if value is None:
        return None
    try:
        return parse_broker_url(value)
    except BrokerUrlError as exc:
        raise click.BadParameter(str(exc)) from exc


def broker_option(*, help_text: str, default: str | None = None) -> Callable[[Any], Any]:
    """``--broker mqtt://[user:pass@]host:port``, also read from ``IVR_BROKER``."""
    return click.option(
        "--broker",
        envvar="IVR_BROKER",
        default=default,
        callback=parse_broker,
        metavar="URL",
        help=help_text,
        show_envvar=True,
    )


@contextlib.asynccontextmanager
async def replay_broker(broker: BrokerConfig | None, *, in_process: bool) -> AsyncIterator[BrokerConfig | None]:
    """The broker a replay uses: the one given, a private embedded one, or none (in-process)."""
    if in_process:
        yield None
    elif broker is not None:
        yield broker
    else:
        async with embedded_broker() as embedded:
            yield embedded
