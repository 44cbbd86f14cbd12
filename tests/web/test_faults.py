"""The faults a trainee saw in the console (issue 18, item 6), each pinned in real Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.browser import (
    at_state,
    call,
    click_keys,
    close_page,
    decision,
    event,
    open_page,
    serving,
    stop,
    type_keys,
)

#: What the countdown shows when the IVR is not waiting for the caller (an en dash).
NOT_WAITING = "\u2013"
#: Where each state's node is drawn: its transform, by state name.
NODE_PLACES = """() => Object.fromEntries([...document.querySelectorAll('#diagram g.node')]
  .map((n) => [n.textContent.trim(), n.getAttribute('transform')]))"""


def test_keys_typed_ahead_stay_on_the_screen_and_the_ledger_event_keeps_the_call_s_clock(page):
    """Keys typed before their prompt arrives show under it; the ledger's event is not numbered #1 nor wall-clocked."""
    call(page, "anna-code")
    type_keys(page, "2121234500001")  # all at once, long before the prompts they answer are played
    at_state(page, "code_entry")
    expect(page.locator("#typed")).to_have_text("1234500001")
    type_keys(page, "#")
    at_state(page, "severity")
    expect(page.locator("#typed")).to_have_text("")
    click_keys(page, "2")
    at_state(page, "routed")
    ledger = event(page, "ivr.ledger.incident_deducted")
    expect(ledger.locator(".seq")).to_have_text("ledger")
    expect(ledger).to_have_attribute("data-time", re.compile(r"^2026-11-17T10:0"))
    expect(event(page, "ivr.call.started")).to_have_attribute("data-time", re.compile(r"^2026-11-17T10:00"))


def test_the_diagram_keeps_its_places_when_a_dotted_arrow_appears(page):
    """A hang-up draws its dotted arrow to `abandoned` without moving any state of the picture."""
    call(page, "anna-code")
    click_keys(page, "2")
    at_state(page, "caller_kind")
    before = page.evaluate(NODE_PLACES)
    page.click("#hangup")
    at_state(page, "abandoned")
    expect(page.locator("#diagram path.edge-pattern-dotted")).to_have_count(1)
    assert page.evaluate(NODE_PLACES) == before


def test_premier_after_hours_hears_english_only_and_the_case_number_stays_on_screen(page):
    """R8's notice is told as the notice (not "no ticket is made"); the case number read back stays on the phone."""
    call(page, "acme-premier", at="2026-11-17T21:00")
    click_keys(page, "223")
    at_state(page, "key_entry")
    type_keys(page, "40000001#")
    at_state(page, "severity")
    click_keys(page, "1")
    at_state(page, "routed")
    r8 = decision(page, "R8")
    expect(r8).to_contain_text("hears that support is in English only")
    expect(r8).not_to_contain_text("no ticket is made")
    expect(page.locator("#prompt-text")).to_contain_text(re.compile(r"Your case number is [\d ,]+\."))
    expect(page.locator("#prompt-text")).to_contain_text("English only")
    expect(page.locator("#prompt-text")).to_contain_text("Please hold")


def test_hours_are_said_with_the_zone_s_spoken_name(page):
    """A prompt says "Central European time", never the IANA name "Europe/Berlin"."""
    call(page, "wayne-berlin", at="2026-11-17T11:30")  # 17:30 in Berlin: closed
    click_keys(page, "222")
    at_state(page, "code_entry")
    type_keys(page, "4000000006#")
    expect(page.locator("#prompts li b", has_text="outside_hours")).to_have_count(1)
    expect(page.locator("#prompts")).to_contain_text("09:00 to 17:00 Central European time")
    expect(page.locator("#prompts")).not_to_contain_text("Europe/Berlin")
    expect(page.locator("#zone option").first).to_have_text("US Eastern time (America/New_York)")


def test_reloading_mid_call_asks_first(page):
    """Leaving the page mid-call raises the browser's "leave page?" dialog; staying keeps the call."""
    call(page, "anna-code")
    click_keys(page, "2")  # the page has had a user gesture, which browsers require before asking
    at_state(page, "caller_kind")
    asked = []

    def stay(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    assert not page.is_closed()
    click_keys(page, "1")
    at_state(page, "auth_method")


def test_a_stopped_server_is_said_plainly_and_the_countdown_stops(browser):
    """After the server stops, the page says so, the countdown shows a dash, and a key is refused saying why."""
    with serving() as (url, proc):
        opened = open_page(browser, url)
        call(opened, "anna-code")
        expect(opened.locator("#countdown")).to_have_text(re.compile(r"\d\.\d s"))
        stop(proc)
        expect(opened.locator("#message")).to_contain_text("the console server is not answering")
        expect(opened.locator("#countdown")).to_have_text(NOT_WAITING)
        opened.wait_for_timeout(400)
        expect(opened.locator("#countdown")).to_have_text(NOT_WAITING)
        opened.keyboard.press("2")
        expect(opened.locator("#message")).to_contain_text("the console server is not answering")
        expect(opened.locator("#message")).not_to_contain_text("no call in progress")
        close_page(opened)


def test_persona_names_are_not_cut_off_in_the_picker(page):
    """Every persona's name in the picker fits its width (the description is on the line below)."""
    widths = page.evaluate(
        """() => {
          const select = document.getElementById('persona');
          const style = getComputedStyle(select);
          const ctx = document.createElement('canvas').getContext('2d');
          ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
          const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 24;
          return [...select.options].map((o) => [o.text, ctx.measureText(o.text).width, room]);
        }"""
    )
    assert len(widths) == 15
    assert all(width <= room for _, width, room in widths), widths
    page.select_option("#persona", "guesser")
    expect(page.locator("#persona-description")).to_contain_text("unknown number guessing codes")
