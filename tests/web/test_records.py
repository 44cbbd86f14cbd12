"""A walk's records (issue 18, item 3): a printable transcript, and a saved scenario that replays anywhere."""

from __future__ import annotations

import shutil

from playwright.sync_api import expect

from ivr import worlds
from tests.web.browser import at_state, call, click_keys, close_page, open_page, replays_green, serving, type_keys


def test_the_transcript_holds_keys_prompts_decisions_and_events_with_codes_masked(page, tmp_path, images):
    """Save transcript: an HTML page with the keys, each prompt as heard, each rule and its data, the events."""
    call(page, "anna-code")
    click_keys(page, "212")
    type_keys(page, "1234500001#")
    click_keys(page, "2")
    at_state(page, "routed")
    expect(page.locator('#outcome dd[data-field="outcome"]')).to_have_text("routed")
    with page.expect_download() as download:
        page.click("#transcript")
    assert download.value.suggested_filename.startswith("transcript_anna_code_")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert "1234500001" not in text
    assert "********01#" in text  # the keys typed, masked
    assert "Please enter your 10-digit support code, then press hash." in text
    assert "Your case number is" in text
    assert "R4 granted at authorizing: support code ********01 is on active contract K-ANNA-STD" in text
    assert "Support code: exactly 10 digits" in text  # the rule's sentence
    assert "#3 ivr.ticket.created" in text
    assert "deducted: contract K-ANNA-STD, ticket 2000001, 4 left" in text

    printed = page.context.new_page()
    printed.goto(path.as_uri())
    printed.emulate_media(media="print")
    expect(printed.locator("h1")).to_contain_text("anna-code, routed")
    expect(printed.locator("tr.decision")).to_have_count(3)
    expect(printed.locator("tr.ledger")).to_have_count(1)
    printed.screenshot(path=images / "console-transcript.png", full_page=True)
    printed.close()


def test_a_walk_on_a_world_of_one_s_own_replays_from_any_folder(browser, tmp_path):
    """`ivr serve --fixture FILE`: the saved walk holds the world itself, and replays far from that file."""
    home = tmp_path / "course"
    home.mkdir()
    mine = home / "my-world.yaml"
    shutil.copy(worlds.packaged(worlds.DEFAULT), mine)
    with serving("--fixture", str(mine), cwd=home) as (url, _):
        opened = open_page(browser, url)
        call(opened, "sales")
        click_keys(opened, "1")
        expect(opened.locator('#outcome dd[data-field="outcome"]')).to_have_text("sales")
        with opened.expect_download() as download:
            opened.click("#save")
        elsewhere = tmp_path / "mail" / "attachments"
        elsewhere.mkdir(parents=True)
        saved = elsewhere / download.value.suggested_filename
        download.value.save_as(saved)
        close_page(opened)
    mine.unlink()  # nothing may depend on the file the server read
    text = saved.read_text(encoding="utf-8")
    assert "\nworld: |\n" in text
    assert "\nfixture:" not in text
    replays_green(saved.name, cwd=elsewhere)
