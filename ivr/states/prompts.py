"""Every prompt the caller hears: a stable name (what scenarios assert on) and its English text."""

from __future__ import annotations

from typing import Final

__all__ = ["PROMPTS", "render"]

PROMPTS: Final[dict[str, str]] = {
    "main_menu": (
        "Welcome to support. For online sales, orders and licence purchases, press 1. "
        "For technical support, press 2. For a question about an existing licence, press 3. "
        "To hear this again, press star."
    ),
    "caller_kind": (
        "If you own Parallels Desktop or Parallels Workstation Extreme, press 1. "
        "If you are calling for a business, press 2."
    ),
    "auth_method_consumer": (
        "To continue with an existing ticket, press 1. To use your 10-digit support code, press 2."
    ),
    "auth_method_business": (
        "To continue with an existing ticket, press 1. To use your 10-digit support code, press 2. "
        "To use your product's 8-digit license key, press 3."
    ),
    "enter_ticket": "Please enter your 7-digit ticket ID, then press hash.",
    "enter_code": "Please enter your 10-digit support code, then press hash.",
    "enter_key": "Please enter your 8-digit license key, then press hash.",
    "no_input": "Sorry, I did not hear anything.",
    "no_match": "Sorry, that is not a valid choice.",
    "wrong_length": "Sorry, that entry does not have the right number of digits.",
    "denied_unknown_ticket": "We could not find that ticket.",
    "denied_ticket_closed": (
        "That ticket is closed and cannot be reopened. Please authorize another way, and a new request will be made."
    ),
    "denied_unknown_code": "We could not find that support code.",
    "denied_unknown_key": "We could not find that license key.",
    "denied_contract_expired": "Your support contract has expired.",
    "denied_contract_not_started": "Your support contract has not started yet.",
    "denied_no_phone_support": "Your support plan does not include phone support.",
    "denied_no_incidents": "Your support contract has no incidents left.",
    "denied_product_not_eligible": "That license key is not for a product supported on this line.",
    "attempts_exhausted": "Sorry, we could not authorize this call.",
    "locked_out": (
        "There have been too many failed attempts from this number. Authorization is locked for 15 minutes."
    ),
    "outside_hours": "Phone support on your plan is available {hours}. We are closed now.",
    "severity": (
        "How severe is the problem? If your business is down, press 1. For a major problem, press 2. "
        "For a medium problem, press 3. For a minor problem or a question, press 4."
    ),
    "case_number": "Your case number is {ticket_spoken}. Please quote it whenever you call about this problem.",
    "english_only": "Outside business hours, phone support is available in English only.",
    "connecting": "Please hold while we connect you to the {queue} team.",
    "connecting_sales": "Please hold while we connect you to our online sales team.",
    "fallback_offer": (
        "You can also reach us with the web request form, by chat, or through our documentation and "
        "knowledge base. Goodbye."
    ),
}


def render(name: str, **context: str) -> str:
    """The text of prompt ``name`` with its placeholders filled."""
    return PROMPTS[name].format(**context)
