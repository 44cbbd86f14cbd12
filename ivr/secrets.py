"""Masking and keyed hashing of support codes and license keys.

Codes and keys are bearer secrets: whoever holds one can open a paid incident. They must never
appear whole in a log line, an event, an error or a trace, so every place that shows one goes
through :func:`mask`, which keeps the last two digits at most.

At rest the directory keeps only :func:`digest`, an HMAC-SHA256 under a *pepper*. With the
pepper from configuration (:data:`PEPPER_ENV`), a copy of the file alone does not give the codes
back; a file given none makes its own (:func:`new_pepper`) and keeps it inside, which guards
against a glance at the file, not against its theft (docs/security.md).
"""

from __future__ import annotations

import hmac
import os
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MIN_PEPPER", "PEPPER_ENV", "PepperError", "digest", "mask", "new_pepper", "pepper_from_env", "scrub"]

#: The environment variable that gives every directory the same pepper (a deployment's secret).
PEPPER_ENV: Final = "IVR_PEPPER"
#: Shortest pepper accepted, in bytes: a short one could be guessed along with the code.
MIN_PEPPER: Final = 16


class PepperError(ValueError):
    """A pepper that cannot be used: too short, or not the one a directory file was made with."""


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


def digest(pepper: bytes, secret: str) -> bytes:
    """The keyed hash a code or key is stored and looked up by: HMAC-SHA256 under ``pepper``."""
    return hmac.digest(pepper, secret.encode(), "sha256")


def new_pepper() -> bytes:
    """A fresh random pepper, for a directory file that was given none."""
    return os.urandom(32)


def pepper_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The pepper set in :data:`PEPPER_ENV` (``None`` when unset or empty); a short one is an error."""
    text = (os.environ if env is None else env).get(PEPPER_ENV, "")
    if not text:
        return None
    pepper = text.encode()
    if len(pepper) < MIN_PEPPER:
        msg = f"{PEPPER_ENV} is {len(pepper)} bytes long; a pepper needs at least {MIN_PEPPER}"
        raise PepperError(msg)
    return pepper
