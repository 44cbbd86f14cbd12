"""The trainer console in real headless Chromium: four walks, each saved as a scenario that replays.

`ivr serve` runs as a subprocess on a free loopback port (with its own private Mosquitto), and
Debian's Chromium is driven by Playwright for Python. No browser is ever downloaded: without
Chromium or Playwright these tests are skipped, saying which is missing and how to install it.
Screenshots of each walk mid-call are taken every run; with ``IVR_SCREENSHOTS=docs`` (``make
screenshots``) they replace the ones in docs/img/ that docs/console.md and the README show, so an
ordinary test run leaves the work tree as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ivr.bus.broker import find_mosquitto, free_port
from tests.conftest import REPO

playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright for Python is not installed (pip install playwright; never `playwright install`)",
)
expect = playwright_api.expect

CHROMIUM = Path(os.environ.get("IVR_CHROMIUM", "/usr/bin/chromium"))
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


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Where screenshots go: docs/img/ when asked (``IVR_SCREENSHOTS=docs``), else a temporary folder."""
    if os.environ.get("IVR_SCREENSHOTS") == "docs":
        return DOCS_IMAGES
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, or a skip that says how to install it."""
    found = CHROMIUM if CHROMIUM.is_file() else Path(shutil.which("chromium") or "/nonexistent")
    if not found.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} or on PATH (apt-get install chromium); browser tests skipped")
    return found


@pytest.fixture(scope="module")
def server():
    """`ivr serve` on a free loopback port, started from the repository (so ./scenarios is where it saves to)."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/ensure-mosquitto.sh installs it)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "IVR_BROKER"}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", "serve", "--port", str(port)],
        cwd=REPO,
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
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("ivr serve did not stop within 15 s of Ctrl-C")
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def browser(chromium):
    """Headless Chromium, launched once for the module."""
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    """A fresh page (its own WebSocket, so its own session) on the console, ready to call."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": 1000})
    context.add_init_script(SPEECH_SPY)
    context.add_init_script(CSP_SPY)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    opened.goto(server)
    expect(opened.locator("#call")).to_be_enabled()
    expect(opened.locator("#diagram svg")).to_be_visible()
    yield opened
    blocked = opened.evaluate("window.__blocked")
    context.close()
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
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", "replay", "--in-process", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
    return path.read_text(encoding="utf-8")


def test_sales_bypass(page, tmp_path, images):
    """R1: sales needs no authorization; a double click places one call, and prompts are spoken with sound on."""
    page.check("#sound")
    call(page, "sales", double=True)
    expect(page.locator("#message")).to_be_hidden()
    click_keys(page, "1")
    at_state(page, "sales")
    expect(decision(page, "R1")).to_contain_text("needs no authorization and never deducts an incident")
    expect(decision(page, "R1")).to_contain_text("online sales chosen at the main menu")
    expect(event(page, "ivr.call.routed")).to_contain_text("queue=sales")
    expect(event(page, "ivr.call.ended")).to_contain_text("outcome=sales")
    expect(page.locator('#outcome dd[data-field="deducted"]')).to_have_text("nothing")
    page.screenshot(path=images / "console-sales.png")
    spoken = page.evaluate("window.__spoken")
    assert spoken[0].startswith("Welcome to support.")
    assert spoken[-1] == "Please hold while we connect you to our online sales team."
    text = save_and_replay(page, tmp_path)
    assert "  outcome: sales" in text
    assert "  deducted: {}" in text


def test_consumer_support_code_deducts_an_incident(page, tmp_path, images):
    """R4: the card shows the persona's code when asked; it opens a ticket, and incident_deducted reaches the events."""
    page.select_option("#persona", "anna-code")
    expect(page.locator("#persona")).to_contain_text("support code ********01")
    expect(page.locator("#persona-secret")).to_have_text("")
    page.click("#reveal")
    expect(page.locator("#persona-secret")).to_have_text("support code 1234500001")
    call(page, "anna-code")
    click_keys(page, "212")
    at_state(page, "code_entry")
    type_keys(page, "1234500001#")
    at_state(page, "severity")
    click_keys(page, "2")
    at_state(page, "routed")
    r4 = decision(page, "R4")
    expect(r4).to_have_class(re.compile(r"\bgranted\b"))
    expect(r4).to_contain_text("Support code: exactly 10 digits")
    expect(r4).to_contain_text("support code ********01 is on active contract K-ANNA-STD")
    expect(decision(page, "R10")).to_contain_text("ticket 2000001 created (severity B)")
    expect(decision(page, "R9")).to_contain_text("queue consumer-technical, priority 3")
    expect(event(page, "ivr.ticket.created")).to_contain_text("contract=K-ANNA-STD")
    deducted = event(page, "ivr.ledger.incident_deducted")
    expect(deducted).to_contain_text("contract=K-ANNA-STD")
    expect(deducted).to_contain_text("balance_after=4")
    expect(page.locator('#outcome dd[data-field="deducted"]')).to_have_text("K-ANNA-STD: 1")
    page.screenshot(path=images / "console-support-code.png")
    assert "1234500001" not in page.locator("#decisions").inner_text()
    assert "1234500001" not in page.locator("#events").inner_text()
    text = save_and_replay(page, tmp_path)
    assert '  deducted: {"K-ANNA-STD": 1}' in text


def test_business_license_key(page, tmp_path, images):
    """R5: a business caller's license key for a listed product; the mid-call page is the docs' screenshot."""
    call(page, "globex-key")
    click_keys(page, "223")
    at_state(page, "key_entry")
    type_keys(page, "40000002#")
    at_state(page, "severity")
    expect(decision(page, "R5")).to_contain_text("License key (business only): exactly 8 digits")
    expect(decision(page, "R5")).to_contain_text("license key ******02 (Parallels Virtuozzo Containers)")
    expect(event(page, "ivr.auth.granted")).to_contain_text("rule=R5")
    expect(page.locator("#path li")).to_have_text(
        ["main_menu", "caller_kind", "lockout_check", "auth_method", "key_entry", "authorizing", "severity"]
    )
    expect(page.locator("#diagram g.node.visited")).to_have_count(6)
    page.screenshot(path=images / "console-license-key.png")
    click_keys(page, "3")
    at_state(page, "routed")
    expect(event(page, "ivr.ledger.incident_deducted")).to_contain_text("contract=K-GLOBEX-STD")
    expect(decision(page, "R9")).to_contain_text("queue business-technical, priority 2")
    text = save_and_replay(page, tmp_path)
    assert '  - press: "40000002#"' in text
    assert "  rule: R5" in text


def test_closed_ticket_then_fallback(page, tmp_path, images):
    """R2 (a) refuses a closed ticket; three no-inputs (a paused countdown run out, two Silence) reach the fallback."""
    call(page, "anna-closed")
    click_keys(page, "211")
    at_state(page, "ticket_entry")
    type_keys(page, "1000002#")
    at_state(page, "auth_method")
    r2 = decision(page, "R2")
    expect(r2).to_have_class(re.compile(r"\bdenied\b"))
    expect(r2).to_contain_text("ticket_closed")
    expect(r2).to_contain_text("ticket 1000002 is closed and cannot be reopened")
    expect(event(page, "ivr.auth.denied")).to_contain_text("reason=ticket_closed")
    page.click("#pause")
    expect(page.locator("#countdown")).to_have_text("paused")
    page.screenshot(path=images / "console-closed-ticket.png")
    page.wait_for_timeout(300)
    expect(page.locator("#prompts li b", has_text="no_input")).to_have_count(0)
    page.click("#pause")  # resume: the countdown starts again from 5 s and is left to run out
    expect(page.locator("#countdown")).to_have_text(re.compile(r"\d\.\d s"))
    expect(page.locator("#prompts li b", has_text="no_input")).to_have_count(1, timeout=9_000)
    page.click("#silence")
    expect(page.locator("#prompts li b", has_text="no_input")).to_have_count(2)
    page.click("#silence")
    at_state(page, "fallback")
    expect(decision(page, "input")).to_have_count(3)
    expect(decision(page, "R11")).to_contain_text("no_input under input")
    expect(event(page, "ivr.call.fallback")).to_contain_text("reason=no_input")
    expect(event(page, "ivr.call.ended")).to_contain_text("outcome=fallback")
    expect(page.locator('#outcome dd[data-field="reason"]')).to_have_text("no_input")
    text = save_and_replay(page, tmp_path)
    assert text.count("  - silence: 5") == 3
    assert "  reason: no_input" in text


def test_keys_with_no_call_say_so(page):
    """A key pressed before any call gets a clear message on the page, and nothing is sent."""
    page.keyboard.press("5")
    expect(page.locator("#message")).to_have_text("no call in progress: choose a persona and press Call first")
