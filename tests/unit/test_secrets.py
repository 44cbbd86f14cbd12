"""Codes and keys are secrets: ``mask`` keeps the last 2 digits at most, ``scrub`` masks long digit runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.logs import scrub_secrets
from ivr.secrets import mask, scrub


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("1234500001", "********01"),
        ("40000001", "******01"),
        ("123", "*23"),
        ("12", "**"),
        ("1", "*"),
        ("", ""),
    ],
)
def test_mask(secret, masked):
    """Every character but the last two becomes ``*``; two or fewer are masked entirely."""
    assert mask(secret) == masked


@given(st.text(alphabet="0123456789", max_size=40))
def test_mask_keeps_length_and_at_most_two_digits(secret):
    """Whatever the entry, the masked text has its length and shows two digits at most, the last ones."""
    masked = mask(secret)
    assert len(masked) == len(secret)
    shown = masked.lstrip("*")
    assert len(shown) <= 2
    assert secret.endswith(shown)


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("code 1234500001 denied", "code ********01 denied"),
        ("key 40000001", "key ******01"),
        ("code=1234500001;key=40000001", "code=********01;key=******01"),
        ("K1234500001", "K********01"),
        ("123456789012345", "*************45"),
        ("ticket 1000001 is open", "ticket 1000001 is open"),
        ("caller +15550100001 at 10:00", "caller +15550100001 at 10:00"),
        ("2026-11-17T10:00:00-05:00", "2026-11-17T10:00:00-05:00"),
        ("1000001 2000001", "1000001 2000001"),
        ("", ""),
    ],
)
def test_scrub(text, scrubbed):
    """Runs of 8+ digits are masked; 7-digit ticket IDs, +E.164 numbers and dates stay readable."""
    assert scrub(text) == scrubbed


@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789", min_size=8, max_size=16),
            st.text(alphabet="abc -:=", min_size=1, max_size=4),
        ),
        max_size=8,
    ),
)
def test_scrub_leaves_no_long_run_outside_phone_numbers(parts):
    """After scrubbing, no run of 8+ digits is left in text that holds no ``+``."""
    text = "".join(parts)
    out = scrub(text)
    digits_run = 0
    for ch in out:
        digits_run = digits_run + 1 if ch.isdigit() else 0
        assert digits_run < 8


def test_scrub_secrets_processor_masks_every_string_value():
    """The log processor masks every string value and leaves other values as they are."""
    out = scrub_secrets(None, "info", {"event": "code 1234500001", "sequence": 3, "caller": "+15550100001"})
    assert out == {"event": "code ********01", "sequence": 3, "caller": "+15550100001"}
