"""The trainer's view of the room (issue 18, item 4): a session's trainees live, read-only, with the branches walked."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from ivr.states.diagram import edges
from tests.web.browser import at_state, call, click_keys, close_page, open_page, type_keys

#: Whether the diagram draws the arrow SOURCE -> DEST as walked by the chosen trainee.
WALKED = """([source, dest]) => {
  const path = document.querySelector(`#diagram path[id$="-L_${source}_${dest}_0"]`);
  return path !== null && path.classList.contains('walked');
}"""


def trainee(room, name: str):
    """The room view's entry for trainee ``name``."""
    return room.locator(f'#trainees li[data-trainee="{name}"]')


def test_the_trainer_watches_each_trainee_s_call_live_and_the_branches_walked(browser, server, images):
    """?room=NAME lists the session's trainees, follows their calls as they go, and paints each one's branches."""
    ann = open_page(browser, f"{server}?session=room-a&trainee=ann")
    ben = open_page(browser, f"{server}?session=room-a&trainee=ben")
    room = open_page(browser, f"{server}?room=room-a")
    expect(room.locator("#room-card")).to_be_visible()
    expect(room.locator("#phone")).to_be_hidden()
    expect(room.locator("#status")).to_contain_text("watching session room-a (read-only)")
    expect(trainee(room, "ann")).to_contain_text("no call yet")
    expect(trainee(room, "ben")).to_contain_text("no call yet")

    call(ann, "anna-code")
    click_keys(ann, "212")
    at_state(ann, "code_entry")
    expect(trainee(room, "ann")).to_contain_text("anna-code · code_entry")  # live, mid-call
    expect(trainee(room, "ann")).to_contain_text("heard: Please enter your 10-digit support code")
    type_keys(ann, "1234500001#")
    click_keys(ann, "2")
    at_state(ann, "routed")
    expect(trainee(room, "ann")).to_contain_text("ended: routed")
    expect(trainee(room, "ann")).to_contain_text("R9 branch: queue consumer-technical")
    expect(trainee(room, "ann")).to_contain_text(re.compile(r"1 call · walked 9 of \d+ branches"))

    call(ben, "sales")
    click_keys(ben, "1")
    expect(trainee(room, "ben")).to_contain_text("sales · ended: sales")
    expect(trainee(room, "ben")).to_contain_text(re.compile(r"1 call · walked 1 of \d+ branches"))

    trainee(room, "ann").click()
    expect(trainee(room, "ann")).to_have_class(re.compile(r"\bchosen\b"))
    expect(room.locator("#state")).to_have_text("ann: routed")
    assert room.evaluate(WALKED, ["main_menu", "caller_kind"])
    assert not room.evaluate(WALKED, ["main_menu", "sales"])
    expect(room.locator("#diagram g.node.here")).to_have_text("routed")
    room.screenshot(path=images / "console-room.png")
    trainee(room, "ben").click()
    expect(room.locator("#state")).to_have_text("ben: sales")
    assert room.evaluate(WALKED, ["main_menu", "sales"])
    assert not room.evaluate(WALKED, ["main_menu", "caller_kind"])

    room.keyboard.press("1")
    expect(room.locator("#message")).to_contain_text("the room view is read-only")
    for opened in (ann, ben, room):
        close_page(opened)


def test_a_room_view_cannot_place_calls_even_by_hand(client):
    """A script on the room view's socket sending a call is refused: the view is read-only."""
    with client.websocket_connect("/ws?room=room-b") as ws:
        hello = ws.receive_json()
        assert hello["watching"] is True
        assert ws.receive_json() == {"type": "room", "session": "room-b", "branches": len(edges()), "trainees": []}
        ws.send_json({"type": "call", "persona": "sales", "at": "2026-11-17T10:00"})
        assert ws.receive_json()["message"].startswith("the room view is read-only")
