"""Fixtures for the trainer console: the app over Starlette's TestClient, and timed WebSocket reads.

Every app starts its own private Mosquitto (as `ivr serve` does with no --broker), so tests never
share a broker with each other or with a developer's running console.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from starlette.testclient import TestClient

from ivr.bus.broker import find_mosquitto
from ivr.web.app import create_app
from tests.conftest import DEFAULT_WORLD_PATH
from tests.web import browser as browser_helpers

#: Bound on every wait for the server: generous for a loaded machine, short enough to fail a test.
WAIT = 15.0


@pytest.fixture
def app(monkeypatch):
    """The console for the default world; saved scenarios name the fixture relative to ./scenarios."""
    monkeypatch.delenv("IVR_BROKER", raising=False)
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    return create_app(fixture=DEFAULT_WORLD_PATH)


@pytest.fixture
def client(app):
    """A test client with the app's lifespan (broker, subscription) running."""
    with TestClient(app) as test_client:
        yield test_client


#: Reads a page's next message off the test's thread, so that a read can be given up after a timeout.
_READER = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="ws-read")


def receive(ws, timeout: float = WAIT) -> dict:
    """The next message from the server, or a failed test after ``timeout`` seconds of nothing.

    The test client's ``receive`` has no timeout: it runs in a reader thread, which a read given
    up leaves waiting until the socket closes at the end of the (failed) test.
    """
    try:
        message = _READER.submit(ws.receive).result(timeout)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"no message from the server within {timeout:g} s")
    assert message["type"] == "websocket.send", message
    return json.loads(message["text"])


def until(ws, predicate, *, timeout: float = WAIT) -> tuple[dict, list[dict]]:
    """Read until a message matches ``predicate``; that message and all before it (timer ticks left out)."""
    seen: list[dict] = []
    while True:
        message = receive(ws, timeout)
        if message["type"] != "timer":
            seen.append(message)
        if predicate(message):
            return message, seen


def of_type(kind: str, **fields):
    """A predicate: a message of ``kind`` whose fields have these values."""

    def match(message: dict) -> bool:
        return message["type"] == kind and all(message.get(k) == v for k, v in fields.items())

    return match


def event_of(event_type: str):
    """A predicate: a forwarded bus event of this CloudEvents type."""
    return lambda m: m["type"] == "event" and m["event"]["type"] == event_type


# -- the browser tests' fixtures (helpers in tests/web/browser.py) ------------------------------------

CHROMIUM = Path(os.environ.get("IVR_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Where screenshots go: docs/img/ when asked (``IVR_SCREENSHOTS=docs``), else a temporary folder."""
    if os.environ.get("IVR_SCREENSHOTS") == "docs":
        return browser_helpers.DOCS_IMAGES
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, or a failure that says how to install it."""
    found = CHROMIUM if CHROMIUM.is_file() else Path(shutil.which("chromium") or "/nonexistent")
    if not found.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM} or on PATH: make test installs it (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def server():
    """`ivr serve` on a free loopback port, started from the repository, for the test module."""
    with browser_helpers.serving() as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(chromium):
    """Headless Chromium, launched once for the module."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(chromium), args=browser_helpers.CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    """A fresh page (its own WebSocket, so its own session) on the console, ready to call."""
    opened = browser_helpers.open_page(browser, server)
    yield opened
    browser_helpers.close_page(opened)
