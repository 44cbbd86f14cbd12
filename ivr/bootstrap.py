"""The composition root, where every entry point assembles the same parts the same way.

Replay, the CLI, the tests, the web console and the load generator all build their system here,
every process's bus is made here, and every store a command opens is opened here, from the
command's :class:`~ivr.settings.Settings`: each connection's and each store's settings are
written once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from ivr.bus.base import status_topic
from ivr.bus.mqtt import MqttBus
from ivr.bus.publisher import Outbox
from ivr.directory.postgres import PostgresOutbox
from ivr.directory.relayed import LEDGER_PROGRESS_FILE, OUTBOX_ROWS, PROGRESS_FILE, RelayedOutbox, RowsQuery
from ivr.directory.sqlite import SqliteDirectory
from ivr.engine import Engine
from ivr.events import TOPIC_ROOT
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.postgres import PostgresLedgerStore
from ivr.ledger.service import LedgerService
from ivr.ledger.store import ANNOUNCEMENT_FUNCTIONS, UNSENT
from ivr.link import InProcessLink, Link, LinkBus, MqttLink
from ivr.multiplex import SharedConnection, answers_filter
from ivr.stores import Store, open_directory, open_ledger

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from ivr.bus.url import BrokerConfig
    from ivr.directory.fixtures import World
    from ivr.directory.storage import DirectoryStorage
    from ivr.ledger.partitions import PartitionShare
    from ivr.ledger.storage import LedgerStorage
    from ivr.settings import Settings

__all__ = [
    "CONSOLE",
    "RelayOutbox",
    "System",
    "answers_bus",
    "build_system",
    "console_connection",
    "events_bus",
    "ivr_bus",
    "ledger_bus",
    "ledger_of",
    "open_ivr_directory",
    "open_ledger_store",
    "open_relayed",
    "relay_bus",
    "status_bus",
]

#: The console's client id and status name unless told otherwise (`ivr serve --instance`).
CONSOLE: Final = "ivr-console"


def ledger_of(source: str) -> str:
    """The ``source`` of the ledger answering the IVR ``source`` alone (a replay's, a console world's, a load run's)."""
    return f"{source}-ledger"


def ledger_bus(  # noqa: PLR0913 - all keyword-only but the broker
    config: BrokerConfig,
    *,
    client_id: str,
    root: str = TOPIC_ROOT,
    share: str | None = None,
    instance: str | None = None,
    partitions: PartitionShare | None = None,
    transient: bool = False,
) -> MqttBus:
    """A ledger's connection, wherever the ledger runs (`ivr ledger run`, a replay's own ledger).

    A persistent session, so a ticket event published while the ledger reconnects waits in the
    broker; manual acks, so an event is acknowledged only once its deduction is committed. ``share``
    takes a share of the events with the other ledgers of that group, ``partitions`` only those
    ticket partitions; ``instance`` (the ledger's ``source``) names its retained status topic, which a
    ``transient`` ledger (a replayed scenario's, named for that run) clears when it closes.
    """
    return MqttBus(
        config=config,
        client_id=client_id,
        instance=instance,
        transient=transient,
        subscriptions=LedgerConsumer.subscriptions(root, share, partitions),
        persistent=True,
        manual_ack=True,
        topic_root=root,
    )


def relay_bus(config: BrokerConfig, *, instance: str, root: str = TOPIC_ROOT) -> MqttBus:
    """An outbox relay's connection (`ivr relay`, `ivr ledger relay`): it only publishes.

    Its status name is its client id: a broker that binds each login to its client ids
    (deploy/mosquitto) knows the relay by it.
    """
    return MqttBus(config=config, client_id=instance, instance=instance, topic_root=root)


def console_connection(config: BrokerConfig, *, instance: str = CONSOLE, root: str = TOPIC_ROOT) -> SharedConnection:
    """The trainer console's one connection, shared by all its session worlds (:mod:`ivr.multiplex`).

    Every event under ``root``, to forward to the page whose call it is and to route to the world it
    belongs to; a persistent session with manual acks, as each world's ledger and follower need.
    ``instance`` is its client id and names its retained status ``<root>/status/<instance>``: a
    broker that binds each login to its client id (deploy/mosquitto) knows the console by it. Its
    worlds' sources are named under it, and their statuses too (:mod:`ivr.multiplex`).
    """
    bus = MqttBus(
        config=config,
        client_id=instance,
        instance=instance,
        subscriptions=[f"{root}/#"],
        persistent=True,
        manual_ack=True,
        topic_root=root,
    )
    return SharedConnection(bus=bus, config=config, instance=instance, root=root)


def events_bus(config: BrokerConfig, *, client_id: str | None, root: str = TOPIC_ROOT) -> MqttBus:
    """`ivr events`' connection: every event under ``root``, as a clean session (what it missed is not its to print)."""
    return MqttBus(config=config, client_id=client_id, subscriptions=[f"{root}/#"], topic_root=root)


def status_bus(config: BrokerConfig, *, instance: str, root: str = TOPIC_ROOT, client_id: str | None = None) -> MqttBus:
    """A watch on one process's retained status (is the ledger up?), for `ivr load` and the fault tests.

    A clean session: only the status now matters, which the broker retains for each new one.
    """
    return MqttBus(
        config=config, client_id=client_id, subscriptions=[status_topic(instance, root=root)], topic_root=root
    )


def answers_bus(config: BrokerConfig, *, client_id: str, root: str = TOPIC_ROOT) -> MqttBus:
    """`ivr load`'s answer meter: the ticket events and the ledger's answers, to time one to the other.

    A persistent session (forgotten at the end of the run): answers published while the broker, or
    the cluster node it is on, restarts wait for it instead of going uncounted.
    """
    return MqttBus(
        config=config,
        client_id=client_id,
        subscriptions=[*LedgerConsumer.subscriptions(root), answers_filter(root)],
        persistent=True,
        topic_root=root,
    )


def ivr_bus(config: BrokerConfig, *, source: str, root: str = TOPIC_ROOT) -> MqttBus:
    """The IVR's connection: it publishes the outbox and follows the ledger's events.

    A persistent session with manual acks, like the ledger's: a ledger event published while the IVR
    reconnects waits in the broker, and is acked once the IVR has taken its balance. Its ``source``
    names its retained status. An IVR with a connection of its own is one run's (a replayed
    scenario, an `ivr load` process), its source named afresh each time: a clean close clears the
    status, where ``offline`` would stay on the broker for a name that never comes back.
    """
    return MqttBus(
        config=config,
        client_id=f"{source}-ivr",
        instance=source,
        transient=True,
        subscriptions=[answers_filter(root)],
        persistent=True,
        manual_ack=True,
        topic_root=root,
    )


#: The ledger's events a relay reads from the ledger's SQLite file (`ivr ledger relay`).
_LEDGER_ROWS: Final = RowsQuery(UNSENT.format(after="rowid > ?"), ANNOUNCEMENT_FUNCTIONS)


class RelayOutbox(Outbox, Protocol):
    """An outbox a relay opened, and closes when it stops."""

    async def close(self) -> None:
        """Let go of the store."""
        ...


async def open_ledger_store(settings: Settings) -> LedgerStorage:
    """The ledger's store ``settings`` name (`ivr ledger run`, its reports)."""
    if settings.ledger_store is None:
        msg = "these settings name no ledger store"
        raise ValueError(msg)
    return await open_ledger(settings.ledger_store)


async def open_ivr_directory(settings: Settings, store: Store) -> DirectoryStorage:
    """An IVR's directory in ``store``, under the settings' pepper (`ivr ledger verify --directory`)."""
    return await open_directory(store, pepper=settings.pepper)


async def open_relayed(settings: Settings, *, progress: Path | None, ledger: bool = False) -> RelayOutbox:
    """What a relay publishes: the IVR's outbox in ``settings.store``, or (``ledger``) the ledger's events.

    On PostgreSQL the relay marks the rows published in the database, as the process that wrote
    them would. On SQLite it reads the file and never writes to it: how far it has published is
    kept in ``progress`` (by default a file of its own beside the one it reads).
    """
    store = settings.ledger_store if ledger else settings.store
    if store is None:
        msg = "these settings name no store to relay"
        raise ValueError(msg)
    if store.dsn is not None:
        return await (PostgresLedgerStore.open(store.dsn) if ledger else PostgresOutbox.open(store.dsn))
    assert store.path is not None  # noqa: S101 - one of the two is always set
    default = store.path.parent / (LEDGER_PROGRESS_FILE if ledger else PROGRESS_FILE)
    return await RelayedOutbox.open(store.path, progress or default, rows=_LEDGER_ROWS if ledger else OUTBOX_ROWS)


@dataclass(slots=True, kw_only=True)
class System:
    """One IVR with its directory, its ledger and the link between them."""

    directory: DirectoryStorage
    engine: Engine
    ledger: LedgerStorage | None  # None when the ledger is another process (`ivr ledger`)
    link: Link

    async def settle(self) -> None:
        """Wait until the ledger has answered everything emitted so far."""
        await self.link.settle()

    async def close(self) -> None:
        """Stop the link and close both databases."""
        await self.link.close()
        await self.directory.close()
        if self.ledger is not None:
            await self.ledger.close()


async def build_system(  # noqa: PLR0913 - all keyword-only, each with a default but world and workdir
    *,
    world: World,
    workdir: Path,
    source: str = "ivr-1",
    broker: BrokerConfig | None = None,
    root: str = TOPIC_ROOT,
    own_ledger: bool = True,
    relay: bool = False,
    shard: tuple[int, int] = (0, 1),
    ledger_now: Callable[[], datetime] | None = None,
    store: Store | None = None,
    schema: str | None = None,
    connection: SharedConnection | None = None,
    pepper: bytes | None = None,
) -> System:
    """A fresh IVR for ``world`` (and its ledger), their SQLite files in ``workdir`` unless ``store`` says PostgreSQL.

    With ``broker`` the events travel over MQTT (publisher, ledger consumer, follower); without it
    the ledger is called in-process, which unit tests of the flow use. With ``own_ledger=False``
    (a broker is then needed) no ledger is built: a separate `ivr ledger` process answers. With
    ``relay=True`` the IVR does not publish its outbox: a separate `ivr relay` process does,
    keeping its progress in ``workdir/relay.db``.
    ``shard=(k, n)`` makes this IVR the k-th of n sharing the callers, and numbers its new
    tickets accordingly (:meth:`SqliteDirectory.share_ticket_numbers`). ``ledger_now`` stamps the
    ledger's events (default: the wall clock).
    The directory hashes codes and keys under ``pepper`` (a command's :attr:`Settings.pepper
    <ivr.settings.Settings.pepper>`, from ``IVR_PEPPER``), or one of its own.
    With a PostgreSQL ``store`` the directory and the ledger live there (in ``schema`` if given)
    instead of in ``workdir``. With a ``connection`` (the console's, on ``broker``) the IVR and its
    ledger take channels of it instead of connections of their own, and ``source`` is named under the
    console's instance (:meth:`SharedConnection.source <ivr.multiplex.SharedConnection.source>`).
    Over a broker each source, the IVR's ``source`` and its ledger's ``<source>-ledger``, keeps a
    retained status of that name while the system runs, cleared when it closes.
    """
    if not own_ledger and broker is None:
        msg = "a system without its own ledger needs a broker to reach one"
        raise ValueError(msg)
    if relay and broker is None:
        msg = "an outbox relayed by `ivr relay` needs a broker to relay to"
        raise ValueError(msg)
    # A step that fails closes what the steps before it opened: a directory left open keeps its
    # reader thread alive, and the process then never exits.
    async with contextlib.AsyncExitStack() as opened:
        shared = store if store is not None and store.dsn is not None else None
        directory = await open_directory(shared or Store(path=workdir / "ivr.db"), schema=schema, pepper=pepper)
        opened.push_async_callback(directory.close)
        await directory.load(world)
        if shard != (0, 1):
            assert isinstance(directory, SqliteDirectory)  # noqa: S101 - sharding is the SQLite path's (ivr load)
            directory.share_ticket_numbers(*shard)
        ledger: LedgerStorage | None = None
        service: LedgerService | None = None
        if own_ledger:
            ledger = await open_ledger(shared or Store(path=workdir / "ledger.db"), schema=schema)
            opened.push_async_callback(ledger.close)
            await ledger.load_opening({c.id: c.incidents for c in world.contracts.values()})
            service = LedgerService(store=ledger, source=ledger_of(source), only_from=source, now=ledger_now)
        link: Link
        if broker is None:
            assert service is not None  # noqa: S101 - checked above
            link = InProcessLink(directory=directory, service=service)
        else:
            follows: LinkBus = (
                ivr_bus(broker, source=source, root=root) if connection is None else connection.answers_to(source)
            )
            own: tuple[LinkBus, LedgerService] | None = None
            if service is not None:
                deducts = (
                    ledger_bus(broker, client_id=service.source, root=root, instance=service.source, transient=True)
                    if connection is None
                    else connection.tickets_from(source, ledger=service.source)
                )
                own = (deducts, service)
            mqtt = MqttLink(
                directory=directory,
                config=broker,
                source=source,
                bus=follows,
                ledger=own,
                root=root,
                relayed_by=workdir / PROGRESS_FILE if relay else None,
            )
            # A start cut short leaves no channel routed to a world that never was, nor its status said.
            opened.push_async_callback(mqtt.close)
            await mqtt.start()
            link = mqtt
        opened.pop_all()  # built whole: the System closes them from now on
    engine = Engine(directory=directory, source=source, on_events=link.notify)
    return System(directory=directory, engine=engine, ledger=ledger, link=link)
