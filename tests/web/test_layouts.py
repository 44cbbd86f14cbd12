"""The console on a phone (390 x 844) and a laptop (1,280 x 800): no sideways scroll, keypad and diagram in reach."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO
from tests.web.browser import LAPTOP, PHONE, at_state, call, click_keys, close_page, event, open_page, type_keys

#: Whether the diagram's current state lies inside the diagram's box as scrolled (the box scrolls, not the page).
CURRENT_IN_VIEW = """() => {
  const box = document.getElementById('diagram').getBoundingClientRect();
  const node = document.querySelector('#diagram g.node.current').getBoundingClientRect();
  return node.left >= box.left && node.right <= box.right && node.top >= box.top && node.bottom <= box.bottom;
}"""


def page_width(page) -> int:
    """How wide the document is: wider than the viewport means a sideways scroll."""
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize(("screen", "size"), [("phone", PHONE), ("laptop", LAPTOP)])
def test_a_whole_call_fits_the_screen(browser, server, images, screen, size):
    """A support-code call walked start to end never scrolls sideways; the keypad and current state are reachable."""
    page = open_page(browser, server, viewport=size)
    assert page_width(page) <= size["width"]
    call(page, "anna-code")
    assert page_width(page) <= size["width"]
    click_keys(page, "212")  # Playwright scrolls each key into view and clicks it: reachable
    at_state(page, "code_entry")
    assert page_width(page) <= size["width"]
    page.locator("#diagram").scroll_into_view_if_needed()
    expect(page.locator("#diagram g.node.current")).to_be_visible()
    assert page.evaluate(CURRENT_IN_VIEW)
    page.screenshot(path=images / f"console-{screen}.png", full_page=screen == "phone")
    type_keys(page, "1234500001#")
    at_state(page, "severity")
    click_keys(page, "2")
    at_state(page, "routed")
    expect(event(page, "ivr.ledger.incident_deducted")).to_have_count(1)
    page.locator("#events li").last.locator("summary").click()  # an event's JSON opened: still no sideways scroll
    assert page_width(page) <= size["width"]
    assert page.evaluate(CURRENT_IN_VIEW)
    close_page(page)


def test_the_room_view_and_a_played_back_scenario_fit_a_phone(browser, server):
    """At 390 px neither the trainer's room view nor the replay player scrolls sideways."""
    room = open_page(browser, f"{server}?room=phone-room", viewport=PHONE)
    expect(room.locator("#room-card")).to_be_visible()
    assert page_width(room) <= PHONE["width"]
    close_page(room)
    page = open_page(browser, server, viewport=PHONE)
    page.set_input_files("#open-scenario", REPO / "scenarios" / "lockout" / "lockout_across_calls.yaml")
    expect(page.locator("#player")).to_be_visible()
    for _ in range(12):
        page.click("#replay-forward")
    expect(page.locator("#replay-step")).to_contain_text("step 13 of")
    assert page_width(page) <= PHONE["width"]
    close_page(page)
