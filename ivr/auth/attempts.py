"""A caller gets 3 authorization attempts per call; the third failure goes to the fallback.

Written once here: the flow's condition (``Call.last_attempt``) and the engine's "attempts
exhausted" prompt, said before the call moves, must never disagree on which failure is the last.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_ATTEMPTS", "is_last"]

#: Authorization attempts per call.
MAX_ATTEMPTS: Final = 3


def is_last(used: int) -> bool:
    """Whether a failure after ``used`` failed attempts in this call uses the call's last attempt."""
    return used + 1 >= MAX_ATTEMPTS
