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
from typing import TYPE_CHECKING, Protocol

import click

from ivr.bootstrap import relay_bus
from ivr.bus.publisher import BULK_BATCH, Outbox, OutboxPublisher
from ivr.bus.url import DEFAULT_BROKER_URL, BrokerConfig, parse_broker_url
from ivr.cli.common import broker_option, log_options, parse_store, require_broker
from ivr.directory.postgres import PostgresOutbox
from ivr.directory.relayed import OUTBOX_ROWS, PROGRESS_FILE, RelayedOutbox
from ivr.events import TOPIC_ROOT
from ivr.logs import LogFormat, configure
from ivr.pg import DatabaseUnavailableError
from ivr.stores import ENV_VAR, Store

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from ivr.directory.relayed import RowsQuery

__all__ = ["POLL", "RelayOutbox", "publish_until_stopped", "relay", "relay_options", "run_on_postgres", "run_relay"]

#: Seconds between looks at an idle outbox, unless told otherwise.
POLL = 0.005


class RelayOutbox(Outbox, Protocol):
    """An outbox a relay opened, and closes when it stops."""

    async def close(self) -> None:
        """Let go of the store."""
        ...


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
    if db is None:
        assert store.dsn is not None  # noqa: S101 - one of the two is always set
        opening = PostgresOutbox.open(store.dsn)
        run_on_postgres(opening, config, root=root, instance=instance, poll=poll)
        return
    asyncio.run(run_relay(db, progress or db.parent / PROGRESS_FILE, config, root=root, instance=instance, poll=poll))


def run_on_postgres(
    opening: Coroutine[None, None, RelayOutbox], config: BrokerConfig, *, root: str, instance: str, poll: float
) -> None:
    """Publish the outbox ``opening`` opens on PostgreSQL until SIGINT or SIGTERM; a database that fails is one line."""

    async def run() -> None:
        await publish_until_stopped(await opening, config, root=root, instance=instance, poll=poll)

    try:
        asyncio.run(run())
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc


async def run_relay(  # noqa: PLR0913 - the options of `ivr relay` and `ivr ledger relay`
    db: Path,
    progress: Path,
    config: BrokerConfig,
    *,
    root: str,
    instance: str,
    poll: float,
    rows: RowsQuery = OUTBOX_ROWS,
) -> None:
    """Publish ``db``'s rows (read with ``rows``, see :class:`RelayedOutbox`) until SIGINT or SIGTERM."""
    await publish_until_stopped(
        await RelayedOutbox.open(db, progress, rows=rows), config, root=root, instance=instance, poll=poll
    )


async def publish_until_stopped(
    directory: RelayOutbox, config: BrokerConfig, *, root: str, instance: str, poll: float
) -> None:
    """Publish ``directory``'s rows until SIGINT or SIGTERM, then close it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            relay_bus(config, instance=instance, root=root) as bus,
            OutboxPublisher(directory=directory, bus=bus, topic_prefix=root, poll=poll, batch=BULK_BATCH) as publisher,
        ):
            # A publisher that died (not a broker outage: those it waits out) must not leave a
            # relay that looks alive and publishes nothing: its error ends the process.
            await publisher.until_stopped(stop)
    finally:
        await directory.close()
