"""Masking of support codes and license keys.

Codes and keys are bearer secrets: whoever holds one can open a paid incident. They must never
appear whole in a log line, an event, an error or a trace, so every place that shows one goes
through :func:`mask`, which keeps the last two digits at most.
"""

from __future__ import annotations

import re

__all__ = ["mask", "scrub"]

_LONG_DIGIT_RUN = re.compile(r"(?<![+\d])\d{8,}")


def mask(secret: str) -> str:
    """Return ``secret`` with every character but the last two replaced by ``*``."""
    if len(secret) <= 2:  # noqa: PLR2004 - two digits is the documented most we show
        return "*" * len(secret)
    return "*" * (len(secret) - 2) + secret[-2:]


def scrub(text: str) -> str:
    """Mask every run of 8 or more digits in free text.

    Ticket IDs are 7 digits and stay readable, and so do E.164 caller numbers (``+`` then digits);
    any other run as long as a license key (8) or a support code (10) is masked. This is the last
    line of defence for log lines and error messages built from caller input, not a substitute
    for masking at the source.
    """
    return _LONG_DIGIT_RUN.sub(lambda m: mask(m.group(0)), text)
