"""The shortcut for numbers already in E.164 gives phonenumbers' own answer, and only where it would."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberFormat

from ivr.phone import DEFAULT_REGION, InvalidNumberError, normalize


def by_phonenumbers(number: str) -> str:
    """What the parse makes of ``number``: its E.164 text, or the error's name when it is no possible number."""
    try:
        parsed = phonenumbers.parse(number, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return "error"
    if parsed.extension or not phonenumbers.is_possible_number(parsed):
        return "error"
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def by_normalize(number: str) -> str:
    """What :func:`normalize` makes of ``number``, in the same terms as :func:`by_phonenumbers`."""
    try:
        return normalize(number)
    except InvalidNumberError:
        return "error"


def test_north_american_e164_numbers_come_back_as_phonenumbers_gives_them():
    """Every +1 number with an area code's first digit 2-9 and ten digits: normalize and the parse agree."""
    rng = random.Random(16)
    numbers = ["+12000000000", "+19999999999", "+15550100001", "+13000000000"]
    numbers += [f"+1{rng.randint(2, 9)}{rng.randrange(10**9):09d}" for _ in range(2000)]
    for number in numbers:
        assert by_normalize(number) == by_phonenumbers(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "+11550100001",  # an area code cannot start with 1: the national prefix
        "+10550100001",
        "+1555010000",  # nine digits
        "+155501000012",  # eleven
        "+1555010000\uff11",  # a full-width last digit
        "+1555010000\u0661",  # an Arabic-Indic last digit
        "+15550100001\n",
        "+15550100001 ",
        "+25550100001",  # another country code
        "15550100001",
    ],
)
def test_numbers_outside_the_shortcut_get_the_parse(number):
    """A number that is not exactly +1, 2-9, nine ASCII digits is read by phonenumbers, whatever it becomes."""
    assert by_normalize(number) == by_phonenumbers(number)


def test_the_metadata_the_shortcut_rests_on():
    """+1 is the US's metadata, whose national prefix is 1 and whose numbers have ten digits (seven locally)."""
    assert phonenumbers.region_code_for_country_code(1) == DEFAULT_REGION == "US"
    metadata = PhoneMetadata.metadata_for_region("US")
    assert metadata is not None
    assert metadata.national_prefix_for_parsing == "1"
    assert tuple(metadata.general_desc.possible_length) == (10,)
