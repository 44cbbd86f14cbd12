"""What a process is built from, read once: its command's options and the environment.

Each command reads its options (click takes ``IVR_BROKER``, ``IVR_STORE`` and ``IVR_LEDGER_STORE``
from the environment for them) and ``IVR_PEPPER`` into one :class:`Settings`, and hands it to the
composition root (:mod:`ivr.bootstrap`), which opens the stores and connections it names: nothing
below the root reads the environment, or opens a connection or a store of the system's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr.events import TOPIC_ROOT
from ivr.secrets import pepper_from_env

if TYPE_CHECKING:
    from ivr.bus.url import BrokerConfig
    from ivr.stores import Store

__all__ = ["Settings", "read_settings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where a process's broker and stores are, under which names it speaks, and its pepper.

    A field a command does not use stays at its default: ``broker`` ``None`` is a private broker
    (or none, for a replay in process), ``store`` ``None`` files in a temporary folder.
    """

    #: The broker, with the login the process connects as.
    broker: BrokerConfig | None = None
    #: The IVR's store (``--store``, ``IVR_STORE``).
    store: Store | None = None
    #: The ledger's store (``ivr ledger --store``, ``IVR_LEDGER_STORE``).
    ledger_store: Store | None = None
    #: The topic root events are published under.
    root: str = TOPIC_ROOT
    #: The process's name on the broker: its status name, and its client id where the two are one
    #: (`ivr serve`, the relays; `ivr events` has a client id only, `ivr ledger run` a --client-id apart).
    instance: str | None = None
    #: The key support codes and license keys are hashed under (``None``: each directory's own).
    pepper: bytes | None = None


def read_settings(
    *,
    broker: BrokerConfig | None = None,
    store: Store | None = None,
    ledger_store: Store | None = None,
    root: str = TOPIC_ROOT,
    instance: str | None = None,
) -> Settings:
    """A command's settings: its options as parsed, and the pepper from ``IVR_PEPPER``.

    `ivr` checks the pepper before any command runs, so a bad one is a usage error there.
    """
    return Settings(
        broker=broker, store=store, ledger_store=ledger_store, root=root, instance=instance, pepper=pepper_from_env()
    )
