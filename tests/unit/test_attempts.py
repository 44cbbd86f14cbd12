"""The attempts limit: 3 authorization attempts per call, the third failure goes to the fallback."""

from __future__ import annotations

import pytest

from ivr.auth.attempts import MAX_ATTEMPTS, is_last


def test_a_call_gets_three_attempts():
    """The domain's figure: 3 attempts per call."""
    assert MAX_ATTEMPTS == 3


@pytest.mark.parametrize(("used", "last"), [(0, False), (1, False), (2, True), (3, True)])
def test_the_failure_after_two_used_is_the_last(used, last):
    """A failure with 0 or 1 attempts used leaves another; with 2 used it is the third and last."""
    assert is_last(used) is last
