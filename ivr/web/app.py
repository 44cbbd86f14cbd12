"""The trainer console as a Starlette app: one page, its static files, and one WebSocket per page.

Everything the page needs ships in ``ivr/web/static`` — the script, the styles and Mermaid
itself — so the console works on a training-room machine with no internet. The diagram is
Mermaid text generated from the flow's tables (`ivr.states.diagram`) and drawn by the vendored
Mermaid in the browser: the same text `docs/flow.md` holds, so no second renderer (and no system
Graphviz) is needed to serve it.

The lifespan owns what the server shares: the broker (a private Mosquitto when none is given, as
``ivr replay`` does), the console's one connection to it (subscribed to ``ivr/v1/#``, shared by
every session world: `ivr.multiplex`) and a temporary directory for each world's SQLite files.
Shutting the server down hangs up every call first.

Every response carries a Content-Security-Policy: scripts only from ``/static``, nothing from
another site, no framing (clickjacking), no plugins; with ``nosniff``, a file is only ever run as
what it is served as. Styles may also be inline, because Mermaid writes its SVG with ``<style>``
and ``style=`` in it; the page's own styles and scripts are files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ivr.bootstrap import CONSOLE, console_connection
from ivr.bus.broker import embedded_broker
from ivr.directory.fixtures import load_world
from ivr.replay.outline import load_scenarios
from ivr.settings import Settings
from ivr.web.console import Console, Session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


__all__ = ["SECURITY_HEADERS", "create_app"]

#: The page and its assets, package data (read through importlib.resources, so an installed wheel serves them).
_STATIC: Final = ("ivr.web", "static")
#: Headers on every HTTP response: what the page may load, and that no other site may frame it.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: WebSocket close code for a page from another origin (RFC 6455: policy violation).
_POLICY_VIOLATION: Final = 1008


class _SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP response (the page and its static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers send ``Origin``; refuse pages of other sites (a WebSocket is not held back by CORS)."""
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser: a test client or a script on this machine
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def _index(_: Request) -> Response:
    page = resources.files(_STATIC[0]).joinpath(_STATIC[1], "index.html").read_bytes()
    return Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})


async def _greet(console: Console, session: Session) -> None:
    """A new page: hello and its world; the world's other pages hear of it; ``--scenario`` starts playing.

    A room view gets the roster of the session it watches instead.
    """
    session.send({**console.hello(), "world": await session.world.status(), "watching": session.watching})
    if session.watching:
        session.world.watch(only=session)
        return
    await session.world.tell(skip=session)
    if console.scenario is not None:
        session.play(console.scenario)


async def _socket(websocket: WebSocket) -> None:
    """One page: hello, then its messages in order, while its call reports back through a queue."""
    if not _same_origin(websocket):
        await websocket.close(code=_POLICY_VIOLATION, reason="the console only serves its own page")
        return
    console: Console = websocket.app.state.console
    await websocket.accept()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    query = websocket.query_params
    try:
        session = console.session(
            outbox.put_nowait, name=query.get("session"), trainee=query.get("trainee"), room=query.get("room")
        )
    except ValueError as exc:
        await websocket.send_text(json.dumps({"type": "error", "message": str(exc)}))
        await websocket.close(code=_POLICY_VIOLATION, reason="bad session name")
        return

    async def pump() -> None:
        while True:
            message = await outbox.get()
            await websocket.send_text(json.dumps(message, separators=(",", ":")))

    writer = asyncio.create_task(pump(), name="console-writer")
    await _greet(console, session)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:  # a binary frame: the page only ever sends JSON text
                session.error("binary frames are not accepted: send each message as JSON text")
                continue
            await session.handle(text)
    except WebSocketDisconnect:
        pass
    finally:
        session.detach()
        writer.cancel()
        # Shielded, so a server tearing this connection down cannot cut the clean-up short.
        await asyncio.shield(console.closing(session))
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await websocket.close()


def create_app(
    *,
    fixture: Path,
    settings: Settings | None = None,
    own_ledger: bool = True,
    scenario: Path | None = None,
) -> Starlette:
    """The console for the fixture world in ``fixture`` (read now: a bad file fails here, not per call).

    ``settings`` name the broker, the store and the console's client id (``instance``). With no
    broker a private Mosquitto is started for the server's lifetime. Saved scenarios
    name a packaged world by its name, and hold any other world whole, so they replay anywhere.
    With ``own_ledger=False`` the calls' deductions come from an `ivr ledger` process.
    ``scenario`` is played back on each page as it opens (read now, like the fixture).
    On a PostgreSQL store each session world is a schema of its own there, dropped when the world
    ends; otherwise SQLite files in a temporary folder.
    """
    settings = settings or Settings()
    broker = settings.broker
    if not own_ledger and broker is None:
        msg = "an external ledger is reached through a broker: give one"
        raise ValueError(msg)
    world = load_world(fixture)
    played = load_scenarios(scenario) if scenario is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            config = broker if broker is not None else await stack.enter_async_context(embedded_broker())
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-console-")))
            console = Console(
                world=world,
                fixture=fixture,
                connection=console_connection(config, instance=settings.instance or CONSOLE, root=settings.root),
                workdir=workdir,
                own_ledger=own_ledger,
                scenario=played,
                settings=settings,
            )
            await console.start()
            stack.push_async_callback(console.close)
            app.state.console = console
            yield

    return Starlette(
        routes=[
            Route("/", _index),
            WebSocketRoute("/ws", _socket),
            Mount("/static", StaticFiles(packages=[_STATIC]), name="static"),
        ],
        middleware=[Middleware(_SecurityHeaders)],
        lifespan=lifespan,
    )
