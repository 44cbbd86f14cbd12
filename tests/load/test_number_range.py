"""`ivr load` numbers each call from its own line, so it refuses more calls than it has numbers for."""

from __future__ import annotations

from click.testing import CliRunner

from ivr.cli import main
from ivr.load.plan import MAX_CALLS, caller_number
from ivr.phone import normalize


def test_the_last_call_number_is_a_possible_number_in_e164():
    """Every number a run can give is already E.164 and a possible number, up to the last."""
    for index in (0, 1, MAX_CALLS - 1):
        assert normalize(caller_number(index)) == caller_number(index)


def test_more_calls_than_numbers_is_refused_before_anything_starts():
    """One call past the numbers there are: a usage error naming the range, exit 2, nothing run."""
    result = CliRunner().invoke(main, ["load", "--calls", str(MAX_CALLS + 1), "--broker", "mqtt://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert f"{MAX_CALLS + 1} is not in the range 1<=x<={MAX_CALLS}" in result.output
