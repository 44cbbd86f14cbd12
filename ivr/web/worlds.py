"""Session worlds: a world kept across calls, so a class can walk what builds up over several calls.

A lockout needs 5 failures across calls, a case number read back on one call authorizes the next,
and a balance runs down call by call; a fresh world per call shows none of that. So each page
calls into a :class:`SessionWorld`: one system (directory and ledger, their SQLite files in a folder
of its own, on channels of the console's one broker connection) built at its first call and kept
until it is reset or the server stops. A page opened with ``?session=NAME`` joins the world of
that name, shared with every page that names it (a class); any other page gets a private world of
its own, so trainees in separate tabs never see each other's effects unless they join one session.
Each build of a world is a source of its own, ``<console instance>/world-<hex>`` (its ledger's the
same with ``-ledger``), with a retained status of that name from its first call to its reset.

The world is the engine's one observer and passes each call's reports to that call's
:class:`~ivr.web.calls.CallRun` (the engine runs every call of the world); what the calls tell
their pages also goes to the world's roster, which the trainer's room view shows (`ivr.web.room`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ivr.auth import lockout
from ivr.bootstrap import System, build_system, ledger_of
from ivr.bus.base import status_topic
from ivr.bus.schemas import check_source
from ivr.stores import scratch_schema
from ivr.web.room import Roster

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ivr.auth.decisions import Decision
    from ivr.directory.fixtures import Persona, World
    from ivr.engine import Heard
    from ivr.events import CloudEvent
    from ivr.ledger.storage import Entry
    from ivr.multiplex import SharedConnection
    from ivr.settings import Settings
    from ivr.states.call import Call
    from ivr.web.calls import CallRun

__all__ = ["BUILD_TIMEOUT", "SESSION_NAME", "SessionWorld", "check_console", "check_name"]

#: How long building a world's system (its stores; the console's connection up) may take before the call gives up.
BUILD_TIMEOUT: Final = 10.0
#: A session's name as it appears in ``?session=NAME``: short, and safe in a URL and a log line.
SESSION_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
#: Hex digits of a world's name (``world-<hex>``): each build of a world is a source of its own.
_WORLD_HEX: Final = 12
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def check_console(instance: str) -> str:
    """``instance`` if a console may be named so; a :class:`ValueError` saying why not otherwise.

    Its worlds' sources are named under it (the longest, a world's ledger's, as
    :func:`~ivr.bootstrap.ledger_of` names it), and their statuses with them.
    """
    status_topic(instance)
    try:
        check_source(ledger_of(f"{instance}/world-{'0' * _WORLD_HEX}"))
    except ValueError as exc:
        msg = f"a console's session worlds are named under it, and {instance!r} makes no event source: {exc}"
        raise ValueError(msg) from None
    return instance


def check_name(name: str) -> str:
    """``name`` if it can name a session; a :class:`ValueError` saying what a name may be otherwise."""
    if SESSION_NAME.fullmatch(name) is None:
        msg = f"not a session name: {name[:60]!r} (1-40 letters, digits, '-' or '_', starting with a letter or digit)"
        raise ValueError(msg)
    return name


class SessionWorld:
    """One world across calls: its system, the calls running in it, and the pages that call into it."""

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        name: str | None,
        world: World,
        connection: SharedConnection,
        workdir: Path,
        own_ledger: bool = True,
        settings: Settings,
    ) -> None:
        """A world named ``name`` (``None``: private to one page); its files go in a folder under ``workdir``.

        On a PostgreSQL store (``settings.store``) the world is a schema of its own there instead,
        dropped with it; its directory hashes under ``settings.pepper``.
        """
        self.name = name
        self.world = world
        self._connection, self._workdir, self._own_ledger, self._settings = connection, workdir, own_ledger, settings
        self._schema = contextlib.AsyncExitStack()
        self.runs: dict[str, CallRun] = {}  # the calls of this world still running, by id
        self.placed = 0  # calls placed since the world was built or last reset
        self.pages: dict[object, Callable[[dict[str, Any]], None]] = {}  # who hears about the world
        self.watchers: dict[object, Callable[[dict[str, Any]], None]] = {}  # who sees its calls (room view)
        self.roster = Roster()  # its trainees and the branches they walked
        self._system: System | None = None
        self._folder: Path | None = None
        self._building = asyncio.Lock()
        self._now: Callable[[], datetime] | None = None  # the clock of the latest call

    # -- the system ---------------------------------------------------------------------------

    async def system(self) -> System:
        """The world's system, built at its first call."""
        async with self._building:
            if self._system is None:
                settings = self._settings
                folder = self._workdir / f"world-{uuid.uuid4().hex[:_WORLD_HEX]}"
                folder.mkdir(parents=True)
                self._folder = folder
                schema = await self._schema.enter_async_context(scratch_schema(settings.store, "console"))
                try:
                    async with asyncio.timeout(BUILD_TIMEOUT):
                        system = await build_system(
                            world=self.world,
                            workdir=folder,
                            source=self._connection.source(folder.name),
                            broker=self._connection.config,
                            connection=self._connection,
                            own_ledger=self._own_ledger,
                            ledger_now=self.now,
                            store=settings.store,
                            schema=schema,
                            root=settings.root,
                            pepper=settings.pepper,
                        )
                except TimeoutError:
                    shutil.rmtree(folder, ignore_errors=True)
                    await self._schema.aclose()
                    msg = f"the broker at {self._connection.config} did not answer within {BUILD_TIMEOUT:g} s"
                    raise RuntimeError(msg) from None
                system.engine.observers.append(self)
                self._system = system
            return self._system

    def now(self) -> datetime:
        """The world's simulated instant: its latest call's clock (the ledger stamps its events with it)."""
        return self._now() if self._now is not None else datetime.now(UTC)

    def place(self, run: CallRun) -> None:
        """A call placed in this world."""
        self.runs[run.id] = run
        self.placed += 1

    def clocked(self, now: Callable[[], datetime]) -> None:
        """A call's clock has started: the world's instant follows it."""
        self._now = now

    def forget(self, run: CallRun) -> None:
        """A call of this world has ended and settled."""
        self.runs.pop(run.id, None)

    async def ledger_entries(self, ticket: str | None) -> list[Entry]:
        """What the ledger did with ``ticket`` (a call's own ticket), oldest first."""
        system = self._system
        if ticket is None or system is None or system.ledger is None:
            return []
        return [e for e in await system.ledger.entries() if e.ticket_id == ticket]

    async def reset(self) -> str | None:
        """Back to the fixture world; the reason it cannot be done yet, or ``None`` once done."""
        if self.runs:
            return f"{len(self.runs)} call(s) still running in this world: hang them up first, then reset"
        await self.close()
        self.placed = 0
        self._now = None
        return None

    async def close(self) -> None:
        """Close the system and remove its files (a later call builds a fresh one)."""
        system, folder = self._system, self._folder
        self._system = self._folder = None
        if system is not None:
            await system.close()
        await self._schema.aclose()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    # -- what the pages are told --------------------------------------------------------------

    async def facts(self, persona: Persona) -> str:
        """What this world holds for ``persona`` now: incidents left, failures from its number."""
        system = self._system
        if system is None:
            return "as the fixture describes it (no call placed in this world yet)"
        directory = system.directory
        parts = []
        for contract in self.world.contracts.values():
            if persona.customer_id is not None and contract.customer_id == persona.customer_id:
                left = await directory.balance(contract.id)
                if left is not None:
                    parts.append(f"{contract.id} has {left} incident{'' if left == 1 else 's'} left")
        failures = len(await directory.failures(persona.caller, _EPOCH))
        if failures:
            parts.append(
                f"{failures} failed authorization{'' if failures == 1 else 's'} from {persona.caller} "
                f"({lockout.MAX_FAILURES} within 15 minutes lock it out)"
            )
        return "; ".join(parts) or "nothing of this persona's has changed yet"

    async def status(self) -> dict[str, Any]:
        """The world as the pages show it: whose it is, how many calls, and each persona's facts."""
        return {
            "type": "world",
            "name": self.name,
            "shared": self.name is not None,
            "placed": self.placed,
            "running": len(self.runs),
            "pages": len(self.pages),
            "facts": {p.id: await self.facts(p) for p in self.world.personas.values()},
        }

    async def tell(self, *, skip: object = None) -> None:
        """Send every page of the world (but ``skip``) its status."""
        status = await self.status()
        for page, send in list(self.pages.items()):
            if page is not skip:
                send(status)

    def show(self, trainee: str, message: dict[str, Any]) -> None:
        """A call of ``trainee``'s reported to its page: the room views see the roster change."""
        if self.roster.report(trainee, message) and self.watchers:
            self.watch()

    def watch(self, only: object = None) -> None:
        """Send the roster to the room views (or to ``only``)."""
        snapshot = self.roster.snapshot(self.name or "private")
        for page, send in list(self.watchers.items()):
            if only is None or page is only:
                send(snapshot)

    # -- the engine's observer: each report to its call ------------------------------------------

    def on_transition(self, call: Call, trigger: str, source: str, dest: str) -> None:
        """To the call's run."""
        run = self.runs.get(call.id)
        if run is not None:
            run.on_transition(call, trigger, source, dest)

    def on_prompt(self, call: Call, heard: Heard) -> None:
        """To the call's run."""
        run = self.runs.get(call.id)
        if run is not None:
            run.on_prompt(call, heard)

    def on_decision(self, call: Call, decision: Decision) -> None:
        """To the call's run."""
        run = self.runs.get(call.id)
        if run is not None:
            run.on_decision(call, decision)

    def on_event(self, call: Call, event: CloudEvent) -> None:
        """To the call's run."""
        run = self.runs.get(call.id)
        if run is not None:
            run.on_event(call, event)
