"""The console in real headless Chromium: `ivr serve` as a subprocess, and the helpers the browser tests share.

`ivr serve` runs on a free loopback port (with its own private Mosquitto), and Debian's Chromium is
driven by Playwright for Python. No browser is ever downloaded: without Chromium the tests are
skipped, saying how to install it. Screenshots are taken every run; with ``IVR_SCREENSHOTS=docs``
(``make screenshots``) they replace the ones in docs/img/ that docs/console.md and the README
show, so an ordinary test run leaves the work tree as it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from ivr.bus.broker import find_mosquitto, free_port
from tests.conftest import REPO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMAGES = REPO / "docs" / "img"
#: Playwright's bound on each wait for the page, in milliseconds.
WAIT_MS = 15_000
#: The two screens the console is made for (issue 18): a phone and a laptop.
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
#: Records what the page asks the browser to speak, so the sound toggle can be checked without audio.
SPEECH_SPY = """
window.__spoken = [];
if (window.speechSynthesis) {
  window.speechSynthesis.speak = (utterance) => window.__spoken.push(utterance.text);
}
"""
#: Records every Content-Security-Policy violation, so a walk proves the page works under the policy.
CSP_SPY = """
window.__blocked = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__blocked.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@contextlib.contextmanager
def serving(*args: str, cwd: Path = REPO) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`ivr serve ARGS` on a free loopback port: its URL and process, stopped with Ctrl-C after."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "IVR_BROKER"}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                output = proc.communicate()[0].decode(errors="replace")
                pytest.fail(f"ivr serve did not start:\n{output}")
            time.sleep(0.1)
    yield url, proc
    stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the server; it must stop cleanly within 15 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("ivr serve did not stop within 15 s of Ctrl-C")
    assert proc.returncode == 0


def open_page(browser, url: str, *, viewport: dict[str, int] | None = None):
    """A fresh context and page on ``url`` (its own WebSocket, so its own session), ready to call."""
    context = browser.new_context(accept_downloads=True, viewport=viewport or {"width": 1440, "height": 1000})
    context.add_init_script(SPEECH_SPY)
    context.add_init_script(CSP_SPY)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    opened.goto(url)
    if "room=" in url:  # a trainer's read-only room view places no calls
        expect(opened.locator("#status")).to_contain_text("watching session")
    else:
        expect(opened.locator("#call")).to_be_enabled()
    expect(opened.locator("#diagram svg")).to_be_visible()
    return opened


def close_page(opened) -> None:
    """Close the page's context, after checking the page kept its own Content-Security-Policy."""
    blocked = opened.evaluate("window.__blocked")
    opened.context.close()
    assert blocked == [], "the page broke its own Content-Security-Policy"


def call(page, persona: str, *, at: str | None = None, double: bool = False) -> None:
    """Pick a persona (and an instant), press Call, and wait for the first prompt."""
    page.select_option("#persona", persona)
    if at is not None:
        page.fill("#at", at)
    if double:
        page.dblclick("#call")
    else:
        page.click("#call")
    expect(page.locator("#status")).to_contain_text(persona)
    expect(page.locator("#prompts li")).to_have_count(1)


def click_keys(page, keys: str) -> None:
    """Press keys with the mouse on the keypad."""
    for key in keys:
        page.click(f'.key[data-key="{key}"]')


def type_keys(page, keys: str) -> None:
    """Press keys on the computer's keyboard (focus stays on the keypad button last clicked)."""
    for key in keys:
        page.keyboard.press(key)


def at_state(page, state: str) -> None:
    """The diagram highlights ``state`` (and the label says so)."""
    expect(page.locator("#state")).to_have_text(state)
    expect(page.locator("#diagram g.node.current")).to_have_count(1)
    expect(page.locator("#diagram g.node.current")).to_have_text(state)


def decision(page, rule: str):
    """The decision panel's entries for ``rule``."""
    return page.locator(f'#decisions li[data-rule="{rule}"]')


def event(page, event_type: str):
    """The events panel's entries of ``event_type``."""
    return page.locator(f'#events li[data-type="{event_type}"]')


def save_and_replay(page, tmp_path: Path) -> str:
    """Save as scenario (the download) in a folder of its own, replay it: it must pass."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    with page.expect_download() as download:
        page.click("#save")
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    replays_green(str(path), cwd=tmp_path)
    return path.read_text(encoding="utf-8")


def replays_green(scenario: str, *, cwd: Path) -> None:
    """`ivr replay --in-process SCENARIO` run in ``cwd`` passes its one scenario."""
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", "replay", "--in-process", scenario],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
