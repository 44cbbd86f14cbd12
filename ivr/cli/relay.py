"""`ivr relay`: the outbox publisher as a process of its own, beside an IVR on the same directory file.

The IVR commits each event to its outbox; whoever publishes the outbox needs CPU for every message
(the MQTT client's cost per publish and per PUBACK). In the IVR's process that CPU is taken from the
calls, and with hundreds of calls ready the publisher was starved (docs/performance.md). As its own
process it runs on another core: it polls the outbox (SQLite in WAL mode lets it read while the
IVR writes) and publishes in order at QoS 1, as the in-process publisher does. It never writes to
the IVR's file: what it has published is kept in a progress file of its own
(:mod:`ivr.directory.relayed`). An IVR built with ``relay=True`` (``ivr load``) leaves the outbox
to it.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ivr.bootstrap import open_relayed, relay_bus
from ivr.bus.publisher import BULK_BATCH, OutboxPublisher
from ivr.bus.url import DEFAULT_BROKER_URL, BrokerConfig, parse_broker_url
from ivr.cli.common import broker_option, log_options, parse_store, require_broker
from ivr.directory.relayed import PROGRESS_FILE
from ivr.events import TOPIC_ROOT
from ivr.logs import LogFormat, configure
from ivr.pg import DatabaseUnavailableError
from ivr.settings import Settings, read_settings
from ivr.stores import ENV_VAR, Store

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["POLL", "relay", "relay_options", "run_relay"]

#: Seconds between looks at an idle outbox, unless told otherwise.
POLL = 0.005


def relay_options(*, progress_file: str, instance: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options every relay command takes: its progress file, the broker, the topic root, its status name."""
    options = [
        click.option(
            "--progress",
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"The relay's own file: how far it has published [default: {progress_file} beside --db].",
        ),
        broker_option(help_text="Broker to publish to.", default=DEFAULT_BROKER_URL),
        click.option("--root", default=TOPIC_ROOT, show_default=True, help="Topic root to publish under."),
        click.option(
            "--instance",
            default=instance,
            show_default=True,
            help="Name of the retained status topic, and the client id the relay connects with.",
        ),
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.command()
@click.option(
    "--store",
    "--db",
    "store",
    required=True,
    envvar=ENV_VAR,
    show_envvar=True,
    callback=parse_store,
    metavar="URL",
    help="The IVR's store: its SQLite file (ivr.db, read only; progress kept in --progress), or "
    "postgresql://... (rows marked sent there).",
)
@relay_options(progress_file=PROGRESS_FILE, instance="ivr-relay")
@click.option(
    "--poll",
    default=POLL,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds between looks at an idle outbox.",
)
@log_options(level="info")
def relay(  # noqa: PLR0913 - one keyword per option
    *,
    store: Store,
    progress: Path | None,
    broker: BrokerConfig | None,
    root: str,
    instance: str,
    poll: float,
    log_format: LogFormat,
    log_level: str,
) -> None:
    """Publish an IVR's outbox to the broker, in order, at least once, until stopped."""
    db = store.path
    if db is not None and not db.exists():
        msg = f"{db}: no such directory file (the IVR whose outbox this publishes creates it: start it first)"
        raise click.ClickException(msg)
    configure(fmt=log_format, level=log_level)
    config = broker or parse_broker_url(DEFAULT_BROKER_URL)
    require_broker(config)
    run_relay(read_settings(broker=config, store=store, root=root, instance=instance), progress=progress, poll=poll)


def run_relay(settings: Settings, *, progress: Path | None, poll: float, ledger: bool = False) -> None:
    """Publish what :func:`~ivr.bootstrap.open_relayed` opens until SIGINT or SIGTERM; a failing database: one line."""
    try:
        asyncio.run(_publish_until_stopped(settings, progress=progress, poll=poll, ledger=ledger))
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc


async def _publish_until_stopped(settings: Settings, *, progress: Path | None, poll: float, ledger: bool) -> None:
    """Publish the relayed rows until SIGINT or SIGTERM, then close the store."""
    assert settings.broker is not None  # noqa: S101 - the commands resolve the broker first
    assert settings.instance is not None  # noqa: S101 - and every relay has a name
    directory = await open_relayed(settings, progress=progress, ledger=ledger)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    root = settings.root
    try:
        async with (
            relay_bus(settings.broker, instance=settings.instance, root=root) as bus,
            OutboxPublisher(directory=directory, bus=bus, topic_prefix=root, poll=poll, batch=BULK_BATCH) as publisher,
        ):
            # A publisher that died (not a broker outage: those it waits out) must not leave a
            # relay that looks alive and publishes nothing: its error ends the process.
            await publisher.until_stopped(stop)
    finally:
        await directory.close()
