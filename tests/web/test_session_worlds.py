"""Session worlds in Chromium (issue 18, item 1): what one call leaves is there for the next, until reset.

A page has a world of its own, kept across its calls; pages opened with ``?session=NAME`` share
one. The personas' lines tell what the world holds for them now.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.browser import at_state, call, click_keys, close_page, decision, open_page, type_keys

GUESSES = ("1111111111#", "2222222222#", "3333333333#")


def ended(page, outcome: str) -> None:
    """The call ended with ``outcome``, and the world has counted it."""
    expect(page.locator('#outcome dd[data-field="outcome"]')).to_have_text(outcome)


def test_the_guesser_is_locked_out_across_calls_until_the_world_is_reset(page):
    """3 failures on one call, 2 on the next: the 5th locks the number out (R lockout); Reset world clears it."""
    expect(page.locator("#world-name")).to_have_text("private")
    page.select_option("#persona", "guesser")
    expect(page.locator("#persona-description")).to_contain_text("over two calls in one session world")
    call(page, "guesser")
    click_keys(page, "212")
    for guess in GUESSES:
        at_state(page, "code_entry")
        type_keys(page, guess)
        if guess != GUESSES[-1]:
            at_state(page, "auth_method")
            click_keys(page, "2")
    ended(page, "fallback")
    expect(page.locator("#persona-description")).to_contain_text("3 failed authorizations from +15550666666")
    expect(page.locator("#world-summary")).to_contain_text("1 call since it was last reset")

    call(page, "guesser", at="2026-11-17T10:01")
    click_keys(page, "212")
    type_keys(page, "4444444444#")
    at_state(page, "auth_method")
    click_keys(page, "2")
    type_keys(page, "5555555555#")
    ended(page, "fallback")
    expect(decision(page, "lockout")).to_contain_text("5 failures within 15 minutes from +15550666666")
    expect(page.locator('#outcome dd[data-field="reason"]')).to_have_text("locked_out")
    with page.expect_download() as download:
        page.click("#save")
    saved = download.value.path().read_text(encoding="utf-8")
    assert "# Walked after 1 earlier call(s) in its session world" in saved

    page.click("#reset")
    expect(page.locator("#message")).to_have_text("the world is reset: as the fixture describes it")
    expect(page.locator("#persona-description")).to_contain_text("as the fixture describes it")
    call(page, "guesser", at="2026-11-17T10:02")
    click_keys(page, "212")
    at_state(page, "code_entry")  # no lockout: the world is the fixture's again


def test_tabs_keep_their_own_worlds_and_a_session_shares_one(browser, server):
    """Private tabs see none of each other's effects; two tabs on ?session=class-a share balances and tickets."""
    alone = open_page(browser, server)
    first = open_page(browser, f"{server}?session=class-a")
    second = open_page(browser, f"{server}?session=class-a")
    expect(first.locator("#world-summary")).to_contain_text("Shared by 2 pages")
    expect(first.locator("#world-name")).to_have_text("session class-a")

    call(first, "anna-code")
    click_keys(first, "212")
    type_keys(first, "1234500001#")
    click_keys(first, "2")
    ended(first, "routed")
    ticket = first.locator('#outcome dd[data-field="ticket"]').inner_text()

    second.select_option("#persona", "anna-ticket")
    expect(second.locator("#persona-description")).to_contain_text("K-ANNA-STD has 4 incidents left")
    alone.select_option("#persona", "anna-ticket")
    expect(alone.locator("#persona-description")).to_contain_text("as the fixture describes it")

    # The case number read back on the first trainee's call authorizes the second trainee's call.
    call(second, "anna-ticket")
    click_keys(second, "211")
    type_keys(second, f"{ticket}#")
    ended(second, "routed")
    expect(decision(second, "R2")).to_contain_text(ticket)

    call(alone, "anna-ticket")
    click_keys(alone, "211")
    type_keys(alone, f"{ticket}#")
    expect(decision(alone, "R2")).to_contain_text("unknown_ticket")
    for opened in (alone, first, second):
        close_page(opened)
