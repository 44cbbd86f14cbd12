"""R11: a caller who cannot be authorized is offered the web form, chat or self-service."""

from __future__ import annotations

from ivr.auth.fallback import OFFER, offered


def test_the_offer_is_web_form_chat_and_self_service_in_that_order():
    """The three channels of R11, in the order the fallback prompt says them."""
    assert offered() == ["web_form", "chat", "self_service"]


def test_each_offer_is_a_list_of_its_own():
    """An event's list can be changed without changing what the next fallback offers."""
    first = offered()
    first.clear()
    assert offered() == list(OFFER)
