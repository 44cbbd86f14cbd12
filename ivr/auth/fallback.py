"""R11: a caller who cannot be authorized is offered other channels before the call ends.

R8's out-of-hours caller hears the same offer, so every fallback names the same three.
"""

from __future__ import annotations

from typing import Final

__all__ = ["OFFER", "offered"]

#: The web request form, chat, and self-service (documentation and knowledge base).
OFFER: Final = ("web_form", "chat", "self_service")


def offered() -> list[str]:
    """The channels a fallback offers, as a call's ``call.fallback`` event lists them."""
    return list(OFFER)
