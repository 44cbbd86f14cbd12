"""Options and helpers the `ivr` subcommands share: the broker, the fixture world, logging, help."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from ivr import worlds
from ivr.bus.base import BusError, BusRefusedError, MqttVersionRefusedError
from ivr.bus.broker import embedded_broker
from ivr.bus.mqtt import probe
from ivr.bus.url import ENV_VAR, MQTT_VERSIONS, BrokerConfig, BrokerUrlError, parse_broker_url
from ivr.stores import StoreUrlError, parse_store_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = [
    "LOG_LEVELS",
    "PRIVATE_BROKER",
    "PROBE_TIMEOUT",
    "Commands",
    "broker_option",
    "fixture_option",
    "log_options",
    "parse_broker",
    "parse_world",
    "replay_broker",
    "require_broker",
    "store_option",
]

#: What a command without --broker or IVR_BROKER uses when it starts a broker of its own.
T = TypeVar("T")

PRIVATE_BROKER: Final = "a private broker on a free loopback port: Mosquitto, else amqtt in process"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Seconds a command waits for a broker it was told to use before saying none answers.
PROBE_TIMEOUT: Final = 5.0


class Commands(click.Group):
    """A group whose command list shows each command's whole summary (its docstring's first sentence).

    Click cuts a summary to fit one line of the terminal and ends it with "..."; a summary is a
    sentence worth reading whole, so it is wrapped instead. A :class:`BusError` that escapes a
    command becomes click's one-line error.
    """

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a broker that fails it mid-way (a refused subscription) is an error, not a traceback."""
        try:
            return super().invoke(ctx)
        except BusError as exc:
            raise click.ClickException(str(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the visible subcommands with their whole summaries."""
        commands = ((name, self.get_command(ctx, name)) for name in self.list_commands(ctx))
        rows = [(name, cmd.get_short_help_str(limit=sys.maxsize)) for name, cmd in commands if cmd and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _click_callback(
    parse: Callable[[str], T], error: type[ValueError]
) -> Callable[[click.Context | None, click.Parameter | None, str | None], T | None]:
    """A click callback: ``parse`` the value given (``None`` stays ``None``); its ``error`` is a usage error."""

    def callback(_: click.Context | None, __: click.Parameter | None, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except error as exc:
            raise click.BadParameter(str(exc)) from exc

    return callback


#: Click callback: a broker URL to a config; a bad URL is a usage error (password never shown).
parse_broker = _click_callback(parse_broker_url, BrokerUrlError)
#: Click callback: a store URL or path to a :class:`~ivr.stores.Store`; another scheme is a usage error.
parse_store = _click_callback(parse_store_url, StoreUrlError)


def broker_option(*, help_text: str, default: str | None = None) -> Callable[[Any], Any]:
    """``--broker mqtt[s]://[user:pass@]host:port``, else ``IVR_BROKER``, else ``default`` or a private broker.

    With it, ``--broker-ca``, ``--broker-cert``, ``--broker-key`` and ``--mqtt-version`` (each
    also a variable), folded into the one :class:`BrokerConfig` the command receives as ``broker``.
    """
    url = click.option(
        "--broker",
        envvar=ENV_VAR,
        default=default,
        callback=parse_broker,
        metavar="URL",
        help=help_text if default is not None else f"{help_text} [default: {PRIVATE_BROKER}]",
        show_envvar=True,
    )
    path = click.Path(exists=True, dir_okay=False, path_type=Path)
    extras = [
        click.option(
            "--broker-ca",
            envvar="IVR_BROKER_CA",
            type=path,
            show_envvar=True,
            help="CA certificates (PEM) to verify an mqtts:// broker by [default: the system's trust store].",
        ),
        click.option("--broker-cert", envvar="IVR_BROKER_CERT", type=path, show_envvar=True,
                     help="A client certificate (PEM) for an mqtts:// broker that asks for one [default: none]."),
        click.option("--broker-key", envvar="IVR_BROKER_KEY", type=path, show_envvar=True,
                     help="The client certificate's private key (PEM) [default: in the certificate's file]."),
        click.option(
            "--mqtt-version",
            envvar="IVR_MQTT_VERSION",
            type=click.Choice(MQTT_VERSIONS),
            show_envvar=True,
            help="The MQTT version to speak [default: 3.1.1, which every supported broker speaks; "
            "or the URL's ?version=].",
        ),
    ]  # fmt: skip

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(
            *args: Any,  # noqa: ANN401 - the command's own arguments, passed through
            broker_ca: Path | None,
            broker_cert: Path | None,
            broker_key: Path | None,
            mqtt_version: str | None,
            **kwargs: Any,  # noqa: ANN401 - the command's own arguments, passed through
        ) -> Any:  # noqa: ANN401 - whatever the command returns
            kwargs["broker"] = _with_options(
                kwargs["broker"], ca=broker_ca, cert=broker_cert, key=broker_key, version=mqtt_version
            )
            return command(*args, **kwargs)

        decorated: Callable[..., Any] = run
        for option in reversed([url, *extras]):
            decorated = option(decorated)
        return decorated

    return decorate


def _with_options(
    config: BrokerConfig | None, *, ca: Path | None, cert: Path | None, key: Path | None, version: str | None
) -> BrokerConfig | None:
    """``config`` with the TLS files and version given as options; a usage error if they cannot apply."""
    if not (ca or cert or key or version):
        return config
    if config is None:
        msg = "--broker-ca, --broker-cert, --broker-key and --mqtt-version need a broker: --broker URL or IVR_BROKER"
        raise click.UsageError(msg)
    try:
        return dataclasses.replace(
            config,
            ca_file=ca or config.ca_file,
            cert_file=cert or config.cert_file,
            key_file=key or config.key_file,
            mqtt_version=version or config.mqtt_version,
        )
    except BrokerUrlError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from exc


def store_option(*, envvar: str, help_text: str, default: str | None = None) -> Callable[[Any], Any]:
    """``--store URL``: ``postgresql://...``, ``sqlite:///PATH`` or a path; else ``envvar``, else ``default``."""
    return click.option(
        "--store",
        envvar=envvar,
        default=default,
        callback=parse_store,
        metavar="URL",
        show_default=default is not None,
        show_envvar=True,
        help=help_text,
    )


def log_options(*, level: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--log-format`` and ``--log-level`` (a choice: any other level is a usage error, exit 2)."""
    fmt = click.option(
        "--log-format",
        type=click.Choice(["console", "json"]),
        default="console",
        show_default=True,
        help="Log lines on stderr for people (console) or machines (json).",
    )
    threshold = click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=level,
        show_default=True,
        help="Log this level and above.",
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        return fmt(threshold(command))

    return decorate


def parse_world(_: click.Context, __: click.Parameter, value: str) -> Path:
    """Click callback: a packaged world's name (``default``) to its file, else the fixture file named."""
    packaged = worlds.packaged(value)
    if packaged is not None:
        return packaged
    path = Path(value)
    if not path.is_file():
        msg = f"{value}: no such fixture file (nor a packaged world: {', '.join(worlds.names())})"
        raise click.BadParameter(msg)
    return path


def fixture_option(*, help_text: str) -> Callable[[Any], Any]:
    """``--fixture FILE|NAME``: a fixture file, or a packaged world by name; the packaged default if not given."""
    return click.option(
        "--fixture",
        default=worlds.DEFAULT,
        callback=parse_world,
        metavar="FILE|NAME",
        show_default=False,
        help=f"{help_text} A fixture file, or the name of a world packaged with ivr [default: {worlds.DEFAULT}].",
    )


def require_broker(config: BrokerConfig, *, client_id: str | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """Return when ``config``'s broker answers; else exit 1 naming the URL tried and how to give another.

    The probe connects clean, so it may use the command's ``client_id`` only where the command's
    own session is clean too. Without it, a refused login is left to the command's own connection:
    a broker that binds each login to one client id (deploy/mosquitto) refuses any other.
    """
    try:
        asyncio.run(probe(config, client_id=client_id, timeout=timeout))
    except BusRefusedError as exc:
        if client_id is None:
            return  # it answered; whether the login is good, the command's own connection says
        msg = f"{config}: {exc}; check the user and password in --broker URL or {ENV_VAR}, and --client-id"
        raise click.ClickException(msg) from None
    except MqttVersionRefusedError as exc:
        msg = f"{exc}; leave out --mqtt-version 5 (and IVR_MQTT_VERSION, ?version=5) for this broker"
        raise click.ClickException(msg) from None
    except BusError as exc:
        msg = f"{exc}; start a broker there, or name another with --broker URL or {ENV_VAR}"
        raise click.ClickException(msg) from None


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
