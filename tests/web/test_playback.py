"""A scenario played back on the diagram (issue 18, item 2): forward, back, pause, speed; each step as live."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import REPO
from tests.web.browser import close_page, decision, event, open_page, serving

LOCKOUT = REPO / "scenarios" / "lockout" / "lockout_across_calls.yaml"


def step(page) -> int:
    """The step the player shows (1-based)."""
    return int(re.match(r"step (\d+) of", page.locator("#replay-step").inner_text()).group(1))


def test_opening_a_scenario_plays_it_step_by_step_forward_and_back(page, images):
    """Open scenario: Forward shows each step as live (state, prompt, decision, event); Back undoes it."""
    page.set_input_files("#open-scenario", LOCKOUT)
    expect(page.locator("#replay-status")).to_contain_text("3 calls")
    expect(page.locator("#replay-status")).to_contain_text("it passes its expectations")
    expect(page.locator("#replay-step")).to_have_text(re.compile(r"^step 1 of \d+: call$"))
    expect(page.locator("#status")).to_contain_text("replay · call 1 · from +15550666666")
    forward = page.locator("#replay-forward")
    while "main_menu" not in page.locator("#prompts").inner_text():
        forward.click()
    expect(page.locator("#prompt-text")).to_contain_text("Welcome to support.")
    expect(page.locator("#state")).to_have_text("main_menu")
    expect(page.locator("#diagram g.node.current")).to_have_text("main_menu")
    expect(event(page, "ivr.call.started")).to_have_count(1)
    shown = step(page)
    while decision(page, "R4").count() == 0:
        forward.click()
    expect(decision(page, "R4")).to_contain_text("denied")
    expect(decision(page, "R4")).to_contain_text("unknown_code")
    page.screenshot(path=images / "console-playback.png")
    page.click("#replay-back")
    expect(decision(page, "R4")).to_have_count(0)
    while step(page) > shown:
        page.click("#replay-back")
    expect(page.locator("#prompts li")).to_have_count(1)
    expect(decision(page, "R4")).to_have_count(0)


def test_play_pause_and_speed_run_to_the_lockout_of_the_second_call(page):
    """Play at the fast speed runs on by itself; Pause holds it; the 2nd call ends locked out, as expected."""
    page.set_input_files("#open-scenario", LOCKOUT)
    expect(page.locator("#player")).to_be_visible()
    page.select_option("#replay-speed", "300")
    page.click("#replay-play")
    expect(page.locator("#replay-play")).to_have_text("Pause")
    expect(page.locator("#status")).to_contain_text("replay · call 2", timeout=30_000)
    page.click("#replay-play")
    held = step(page)
    page.wait_for_timeout(900)
    assert step(page) == held
    page.click("#replay-play")
    expect(page.locator("#status")).to_contain_text("replay · call 3", timeout=30_000)
    page.click("#replay-play")
    # Back from wherever the third call was paused (it may have shown its own lockout decision
    # already) into the end of the second, where the fifth failure locked the number.
    while "replay · call 2" not in page.locator("#status").inner_text() or decision(page, "lockout").count() == 0:
        page.click("#replay-back")
    expect(decision(page, "lockout")).to_contain_text("5 failures within 15 minutes")
    expect(page.locator("#replay-step")).to_contain_text(": result")
    expect(page.locator('#outcome dd[data-field="reason"]')).to_have_text("locked_out")
    expect(page.locator('#outcome dd[data-field="expectations"]')).to_have_text("met")


def test_a_broken_scenario_is_refused_with_its_line(page, tmp_path):
    """A file that is no scenario gets a clear error naming the line, and nothing else changes."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nat: 2026-11-17T10:00:00-05:00\nfixture: default\ncaller: '+15550199999'\nsteps: 5\n")
    page.set_input_files("#open-scenario", bad)
    expect(page.locator("#message")).to_contain_text("cannot play this scenario back")
    expect(page.locator("#message")).to_have_text(
        "cannot play this scenario back: bad.yaml: scenario: 'steps' must be a list"
    )
    expect(page.locator("#player")).to_be_hidden()


def test_serve_scenario_plays_it_on_every_page_that_opens(browser):
    """`ivr serve --scenario FILE`: a page opens with the file ready to play on its diagram."""
    with serving("--scenario", str(LOCKOUT)) as (url, _):
        opened = open_page(browser, url)
        expect(opened.locator("#replay-status")).to_contain_text("Lockout - 5 failed authorizations")
        expect(opened.locator("#player")).to_be_visible()
        opened.click("#replay-forward")
        expect(opened.locator("#replay-step")).to_contain_text("step 2 of")
        close_page(opened)


OUTLINE = """\
name: R4 a valid support code deducts from its own contract
at: 2026-11-17T10:00:00-05:00
fixture: default
caller: "+15550100001"
examples:
  - {code: "1234500001", contract: K-ANNA-STD}
  - {code: "1234500006", contract: K-FAY-ONE}
steps:
  - press: "2"
  - press: "1"
  - press: "2"
  - press: "${code}#"
  - press: "4"
expect:
  outcome: routed
  rule: R4
  deducted: {${contract}: 1}
"""


def test_an_outline_plays_each_example_in_turn(page, tmp_path):
    """A scenario outline plays its examples one after another, each call closed by its own result."""
    outline = tmp_path / "outline.yaml"
    outline.write_text(OUTLINE, encoding="utf-8")
    page.set_input_files("#open-scenario", outline)
    expect(page.locator("#replay-status")).to_contain_text("2 examples, 2 calls")
    expect(page.locator("#replay-status")).to_contain_text("it passes its expectations")
    expect(page.locator("#status")).to_contain_text("replay · example 1 · call 1")
    while "example 2" not in page.locator("#status").inner_text():
        page.click("#replay-forward")
    page.click("#replay-back")
    expect(page.locator('#outcome dd[data-field="deducted"]')).to_have_text("K-ANNA-STD: 1")
    while page.locator("#replay-forward").is_enabled():  # on to the last step
        page.click("#replay-forward")
    expect(page.locator("#status")).to_contain_text("replay · example 2 · call 1")
    expect(page.locator("#replay-step")).to_contain_text(": result")
    expect(page.locator('#outcome dd[data-field="deducted"]')).to_have_text("K-FAY-ONE: 1")
    expect(page.locator("#replay-forward")).to_be_disabled()
