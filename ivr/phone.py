"""Caller numbers in one form, E.164, so that one telephone line is one line however it is written.

The lockout counts failures per number: were `15550100001` and `+1 555 010 0001` two numbers, a
guesser would get a fresh counter by writing the same line another way. Every number that enters
the system (a scenario's ``caller``, a fixture's numbers, the engine's call entry) goes through
:func:`normalize`, built on ``phonenumbers`` (Google's libphonenumber), which also reads
full-width and Arabic-Indic digits, spaces, dashes and brackets.

Numbers are checked for a *possible* length, not for being assigned: the fictional 555 numbers the
simulator uses are possible and would fail a validity check.

A North American number already written in E.164 is returned as it is, without a parse: for
``+1``, an area code's first digit (2-9) and nine more ASCII digits, ``phonenumbers`` strips
nothing (the region's national prefix is ``1``) and finds the one possible length, so it gives the
same text back; the tests hold the shortcut to ``phonenumbers``' answer and to those facts of its
metadata. Any other writing of the line, full-width or spaced, still goes through the parse.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

__all__ = ["DEFAULT_REGION", "InvalidNumberError", "normalize"]

#: The region of a number written without a country code: the support line is in the US.
DEFAULT_REGION: Final = "US"

_NOT_POSSIBLE: Final = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "a length no number of its country has",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}
_UNPARSABLE: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
#: A North American line in E.164 already: the one form the parse would give back unchanged.
_NANP_E164: Final = re.compile(r"\+1[2-9][0-9]{9}")
#: What an error shows of the number given: a file may hold a megabyte where a number belongs.
_SHOWN_CHARS: Final = 40


class InvalidNumberError(ValueError):
    """A caller number that is not a possible telephone number."""


def normalize(number: str) -> str:
    """``number`` in E.164 (``+15550100001``); :class:`InvalidNumberError` when it cannot be one."""
    if _NANP_E164.fullmatch(number):
        return number
    try:
        parsed = phonenumbers.parse(number, DEFAULT_REGION)
    except NumberParseException as exc:
        why = _UNPARSABLE.get(exc.error_type, "no digits where a number belongs")
        raise InvalidNumberError(_refusal(number, why)) from None
    if parsed.extension:
        raise InvalidNumberError(_refusal(number, "it has an extension; a calling line has none"))
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible != ValidationResult.IS_POSSIBLE:
        raise InvalidNumberError(_refusal(number, _NOT_POSSIBLE.get(possible, "not possible")))
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def _refusal(number: str, why: str) -> str:
    shown = number if len(number) <= _SHOWN_CHARS else number[: _SHOWN_CHARS - 3] + "..."
    return f"caller number {shown!r} is not a telephone number ({why})"
