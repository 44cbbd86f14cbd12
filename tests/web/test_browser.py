"""The trainer console in real headless Chromium: four walks, each saved as a scenario that replays.

Fixtures (`ivr serve` as a subprocess, Chromium, a page) are in conftest.py; helpers in browser.py.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.browser import at_state, call, click_keys, decision, event, save_and_replay, type_keys


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
    expect(page.locator("#persona-description")).to_contain_text("support code ********01")
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
