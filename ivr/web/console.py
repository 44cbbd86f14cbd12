"""The console server's state: the fixture world, the broker, and which page each call belongs to.

One :class:`Console` per server; one :class:`Session` per WebSocket (one open page), holding at
most one running call, placed in the page's session world (`ivr.web.worlds`): the world named by
the page's ``?session=NAME``, shared with the other pages naming it, or else one of its own.
Several trainees use one server at once without seeing each other: a page
only ever hears about its own calls, since the engine's reports go straight to the call's page,
and the bus's events are forwarded by their CloudEvents ``subject`` — the call id — to the page
that placed that call. The events a page shows are the very JSON integrators receive.

Personas' descriptions name the support code or license key the trainee types; the page gets them
masked (:func:`ivr.secrets.scrub`), and a persona's own code or key whole only when its card asks
(:class:`~ivr.web.messages.Reveal`), so an open page never holds every secret of the world.

Nothing is left behind by a page that goes away: closing a session hangs its call up, waits for
it to end (the engine leaves nothing half-done on a hang-up), and cancels it if it does not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from typing import TYPE_CHECKING, Any, Final

import structlog

from ivr import phone, worlds, zones
from ivr.bus.base import BusUnavailableError
from ivr.secrets import scrub
from ivr.settings import Settings
from ivr.states.diagram import mermaid
from ivr.web.calls import CallRun
from ivr.web.messages import (
    BadMessageError,
    Command,
    Control,
    KeyPress,
    OpenScenario,
    Reset,
    Reveal,
    StartCall,
    parse,
)
from ivr.web.playback import play, read_scenarios
from ivr.web.worlds import SessionWorld, check_name
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ivr.bus.url import BrokerConfig
    from ivr.directory.fixtures import Persona, World
    from ivr.multiplex import SharedConnection
    from ivr.replay.scenario import Scenario

__all__ = [
    "BROKER_TIMEOUT",
    "DEFAULT_AT",
    "MAX_CALLS",
    "MAX_WORLDS",
    "STOP_GRACE",
    "Console",
    "Session",
    "persona_secrets",
]

#: The page's starting instant: a Tuesday 10:00 US Eastern, inside every contract of the default
#: world (the date the shipped scenarios use), so a first walk is not refused for the hours.
DEFAULT_AT: Final = "2026-11-17T10:00"
#: Calls running at once on one server.
MAX_CALLS: Final = 50
#: Shared session worlds one server keeps (each holds two SQLite files, or a schema, until the
#: server stops): a page naming a new one beyond this is refused.
MAX_WORLDS: Final = 50
#: How long a hung-up call may take to end and close before it is cancelled.
STOP_GRACE: Final = 5.0
#: How long the server waits for the broker at start-up before it says it cannot reach it.
BROKER_TIMEOUT: Final = 10.0

log = structlog.get_logger("ivr.web")

_DIGIT_RUN: Final = re.compile(r"\d+")


def persona_secrets(world: World, persona: Persona) -> list[dict[str, str]]:
    """The support codes and license keys ``persona``'s description names: what its trainee types."""
    secrets = []
    for digits in _DIGIT_RUN.findall(persona.description):
        if digits in world.support_codes:
            secrets.append({"kind": "support code", "digits": digits})
        elif digits in world.license_keys:
            secrets.append({"kind": "license key", "digits": digits})
    return secrets


class Console:
    """The server: personas to call as, a fresh system per call, events forwarded by subject."""

    def __init__(  # noqa: PLR0913 - all keyword-only
        self,
        *,
        world: World,
        fixture: Path,
        connection: SharedConnection,
        workdir: Path,
        own_ledger: bool = True,
        scenario: list[Scenario] | None = None,
        settings: Settings | None = None,
    ) -> None:
        """Serve calls on ``world`` (read from ``fixture``) over ``connection``; SQLite files go in ``workdir``.

        ``connection`` (:func:`ivr.bootstrap.console_connection`) is the console's one connection to
        the broker: every session world's IVR and ledger use it, and every event comes through it to
        be forwarded to its page.

        ``scenario`` (``ivr serve --scenario FILE``) is played back on every page as it opens. On a
        PostgreSQL store (``settings.store``) each session world is a schema of its own there instead.

        Saved scenarios name a packaged world by its name, and hold any other world whole (``world:``),
        so they replay wherever they are kept.
        ``own_ledger=False``: deductions come from an `ivr ledger` process already on the broker.
        """
        self.own_ledger = own_ledger
        self.scenario = scenario
        self.world = world
        self.connection = connection
        self.broker: BrokerConfig = connection.config
        self.workdir = workdir
        self.settings = settings or Settings()
        self.fixture = worlds.name_of(fixture)  # None: a world of one's own, embedded in saved walks
        self.world_text = None if self.fixture else fixture.read_text(encoding="utf-8")
        self._fixture_shown = self.fixture or fixture.name
        self.calls: dict[str, CallRun] = {}  # running calls, by id
        self.sessions: set[Session] = set()
        self.worlds: dict[str, SessionWorld] = {}  # the named (shared) session worlds, kept until the server stops
        self._pages: dict[str, Session] = {}  # call id -> the page that placed it (events are routed here)
        # The console is the long-running IVR process: its connection carries the retained
        # ivr/v1/status/ivr-console (online; the last will says offline).
        connection.watch(self._forward)
        self._closing: set[asyncio.Task[None]] = set()

    def hello(self) -> dict[str, Any]:
        """What a page needs first: the personas, the flow's diagram, the defaults."""
        return {
            "type": "hello",
            "personas": [
                {
                    "id": p.id,
                    "description": scrub(p.description),
                    "caller": p.caller,
                    # What the card's "show" control reveals (its kind only): None when nothing.
                    "reveals": next((x["kind"] for x in persona_secrets(self.world, p)), None),
                }
                for p in self.world.personas.values()
            ],
            "fixture": self._fixture_shown,
            "diagram": mermaid(side_edges=False),
            "diagram_all": mermaid(),
            "default_at": DEFAULT_AT,
            # The zones the page offers, each with the name a caller hears (US Eastern first: the default).
            "zones": [{"id": key, "name": name} for key, name in zones.SPOKEN.items()],
        }

    async def start(self) -> None:
        """Connect to the broker and forward its events; return once subscribed."""
        try:
            async with asyncio.timeout(BROKER_TIMEOUT):
                await self.connection.start()
        except TimeoutError:
            await self.connection.close()
            msg = f"no MQTT broker answers at {self.broker} (waited {BROKER_TIMEOUT:g} s)"
            raise BusUnavailableError(msg) from None

    async def close(self) -> None:
        """End every session (hanging up their calls), then leave the broker."""
        for session in list(self.sessions):
            self.closing(session)
        await asyncio.gather(*self._closing)
        for world in self.worlds.values():
            await world.close()
        await self.connection.close()

    def session_world(self, name: str | None) -> SessionWorld:
        """The session world named ``name`` (made at its first page), or a new private one for ``None``."""
        if name is not None and name in self.worlds:
            return self.worlds[name]
        if name is not None and len(self.worlds) >= MAX_WORLDS:
            msg = f"the console keeps {MAX_WORLDS} session worlds already: join one of them, or restart the server"
            raise ValueError(msg)
        world = SessionWorld(
            name=name,
            world=self.world,
            connection=self.connection,
            workdir=self.workdir,
            own_ledger=self.own_ledger,
            settings=self.settings,
        )
        if name is not None:
            self.worlds[check_name(name)] = world
        return world

    def session(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        name: str | None = None,
        trainee: str | None = None,
        room: str | None = None,
    ) -> Session:
        """A new page: in the session world ``name`` (``None``: one of its own) as ``trainee``, or a room view.

        With ``room`` the page watches that session read-only. A bad name is a :class:`ValueError`
        saying what a name may be.
        """
        if room is not None:
            session = Session(console=self, send=send, world=self.session_world(room), watching=True)
        else:
            world = self.session_world(name)
            label = world.roster.join(None if trainee is None else check_name(trainee))
            session = Session(console=self, send=send, world=world, trainee=label)
        self.sessions.add(session)
        return session

    def closing(self, session: Session) -> asyncio.Task[None]:
        """Close ``session`` in a task of its own, which the server waits for before it stops."""
        task = asyncio.create_task(session.close(), name="console-session-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    def route(self, call_id: str, session: Session) -> None:
        """Send the bus's events about ``call_id`` to ``session``."""
        self._pages[call_id] = session

    def forget(self, session: Session) -> None:
        """A page is gone: route nothing more to it."""
        self.sessions.discard(session)
        for call_id in [c for c, s in self._pages.items() if s is session]:
            del self._pages[call_id]

    def _forward(self, topic: str, event: dict[str, Any]) -> None:
        """An event on the bus whose subject is a call placed here, to that call's page."""
        subject = event.get("subject")
        session = self._pages.get(subject) if isinstance(subject, str) else None
        if session is not None:
            session.send({"type": "event", "topic": topic, "event": event})


class Session:
    """One open page: at most one call running, the trainee's messages applied to it."""

    def __init__(
        self,
        *,
        console: Console,
        send: Callable[[dict[str, Any]], None],
        world: SessionWorld,
        trainee: str = "",
        watching: bool = False,
    ) -> None:
        """A page reached through ``send``: ``trainee`` calling into ``world``, or a room view ``watching`` it."""
        self.console = console
        self.world = world
        self.trainee = trainee
        self.watching = watching
        (world.watchers if watching else world.pages)[self] = self.send
        self._out = send
        self.run: CallRun | None = None
        self._resetting: asyncio.Task[None] | None = None
        self._playing: asyncio.Task[None] | None = None
        self.closed = False
        self.detached = False

    def send(self, message: dict[str, Any]) -> None:
        """Tell the page, unless it is gone."""
        if not self.detached:
            self._out(message)

    def detach(self) -> None:
        """The page is gone: what its ending call still says goes nowhere."""
        self.detached = True

    def error(self, message: str) -> None:
        """Tell the page what went wrong; the page shows it and nothing else changes."""
        self.send({"type": "error", "message": message})

    async def handle(self, text: str | bytes) -> None:
        """Apply one message from the page."""
        if self.watching:
            self.error("the room view is read-only: open the console without ?room= to place calls")
            return
        try:
            command = parse(text)
        except BadMessageError as exc:
            self.error(str(exc))
            return
        self.apply(command)

    def apply(self, command: Command) -> None:
        """Start a call, show a persona's code, or pass a key or a control to the running call."""
        if isinstance(command, StartCall | Reveal | OpenScenario | Reset):
            self._page_command(command)
            return
        run = self.run
        if run is None:
            self.error("no call in progress: choose a persona and press Call first")
            return
        if run.over:
            self.error("the call has ended: press Call for a new one")
            return
        if isinstance(command, KeyPress):
            run.press(command.key)
            return
        assert isinstance(command, Control)  # noqa: S101 - the last kind of command
        {"silence": run.silence, "hangup": run.hang_up, "pause": run.pause, "resume": run.resume}[command.action]()

    def _page_command(self, command: StartCall | Reveal | OpenScenario | Reset) -> None:
        """The commands that need no running call."""
        if isinstance(command, StartCall):
            self._start(command)
        elif isinstance(command, Reveal):
            self._reveal(command.persona)
        elif isinstance(command, OpenScenario):
            self._open(command)
        else:
            self._resetting = asyncio.create_task(self._reset(), name="console-world-reset")

    def _open(self, command: OpenScenario) -> None:
        try:
            scenarios = read_scenarios(command.name, command.text)
        except SourceError as exc:  # named as the page knows the file, not by the server's folder
            where = f"{exc.path.name}:{exc.line}" if exc.line else exc.path.name
            self.error(f"cannot play this scenario back: {where}: {exc.message}")
            return
        self.play(scenarios)

    def play(self, scenarios: list[Scenario]) -> None:
        """Run ``scenarios`` (a file's) and send the page their frames to play back on the diagram."""
        if self._playing is not None and not self._playing.done():
            self.error("a scenario is still being prepared on this page: one at a time")
            return
        self.send({"type": "replay_loading", "name": scenarios[0].name})
        self._playing = asyncio.create_task(self._play(scenarios), name="console-playback")

    async def _play(self, scenarios: list[Scenario]) -> None:
        try:
            self.send(await play(scenarios, workdir=self.console.workdir))
        except Exception as exc:  # the page must hear why, never wait forever
            log.exception("console playback failed", scenario=scenarios[0].name)
            self.error(f"the scenario could not be played back: {exc}")

    async def _reset(self) -> None:
        refused = await self.world.reset()
        if refused is not None:
            self.error(refused)
            return
        log.info("console world reset", world=self.world.name or "private")
        for send in list(self.world.pages.values()):
            send({"type": "reset", "by_you": send == self.send})
        await self.world.tell()

    def _persona(self, persona_id: str) -> Persona | None:
        """The persona named, or ``None`` after telling the page which ones there are."""
        persona = self.console.world.personas.get(persona_id)
        if persona is None:
            known = ", ".join(self.console.world.personas)
            self.error(f"unknown persona {persona_id!r}; the personas are: {known}")
        return persona

    def _reveal(self, persona_id: str) -> None:
        persona = self._persona(persona_id)
        if persona is not None:
            self.send(
                {"type": "secret", "persona": persona.id, "secrets": persona_secrets(self.console.world, persona)}
            )

    def _start(self, command: StartCall) -> None:
        console = self.console
        if self.closed:
            return
        if self.run is not None and not self.run.done:
            state = "still ending" if self.run.over else "in progress"
            self.error(f"a call is {state} on this page (call {self.run.id}): one call at a time")
            return
        persona = self._persona(command.persona)
        if persona is None:
            return
        try:  # a fixture's numbers are checked when it is read; a world built otherwise may hold any
            persona = dataclasses.replace(persona, caller=phone.normalize(persona.caller))
        except phone.InvalidNumberError as exc:
            self.error(f"call refused: persona {persona.id!r}: {exc}")
            return
        if len(console.calls) >= MAX_CALLS:
            self.error(f"the console is busy ({MAX_CALLS} calls running): try again in a moment")
            return
        call_id = uuid.uuid4().hex[:12]
        run = CallRun(
            call_id=call_id,
            persona=persona,
            at=command.at,
            world=self.world,
            trainee=self.trainee,
            fixture=console.fixture,
            world_text=console.world_text,
            send=self.send,
        )
        self.run = run
        self.world.place(run)
        console.route(call_id, self)
        console.calls[call_id] = run
        self.send(
            {
                "type": "started",
                "call_id": call_id,
                "persona": persona.id,
                "description": scrub(persona.description),
                "caller": persona.caller,
                "at": command.at.isoformat(timespec="minutes"),
            }
        )
        log.info("console call", call_id=call_id, persona=persona.id, at=command.at.isoformat())
        run.start().add_done_callback(lambda _: console.calls.pop(call_id, None))

    async def close(self) -> None:
        """The page is gone: hang up its call, wait for it to end (or cancel it), route nothing more."""
        self.closed = True
        if self.run is not None:
            await self.run.stop(grace=STOP_GRACE)
            self.console.calls.pop(self.run.id, None)
        self.console.forget(self)
        self.world.pages.pop(self, None)
        self.world.watchers.pop(self, None)
        if self.world.name is None:  # a private world ends with its page
            await self.world.close()
        else:
            await self.world.tell()
