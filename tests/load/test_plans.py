"""A load run's calls are a pure function of the seed: the world, the mix and every call's plan."""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import replace

import pytest
from click.testing import CliRunner

from ivr.callers import HangUp, Press, Silence
from ivr.cli import main
from ivr.directory.fixtures import load_world
from ivr.load.mix import CallKind, Mix, default_mix, load_mix
from ivr.load.plan import NO_INPUT_SILENCE, Planner, caller_number
from ivr.load.world import Catalog, synthetic_world, write_fixture
from ivr.yamlsrc import SourceError


def test_the_same_seed_makes_the_same_world():
    """Two worlds from one seed are equal; another seed gives other codes."""
    assert synthetic_world(seed=3, customers=30) == synthetic_world(seed=3, customers=30)
    assert synthetic_world(seed=3, customers=30).support_codes != synthetic_world(seed=4, customers=30).support_codes


def test_the_world_round_trips_through_its_fixture_file_without_its_secrets(tmp_path, small_world):
    """The fixture file `ivr ledger --fixture` reads holds the IVR's world but for its codes and keys, never whole."""
    path = tmp_path / "world.yaml"
    write_fixture(small_world, path)
    assert load_world(path) == replace(small_world, support_codes={}, license_keys={})
    text = path.read_text(encoding="utf-8")
    assert [s for s in (*small_world.support_codes, *small_world.license_keys) if s in text] == []


def test_the_world_never_runs_dry_and_answers_around_the_clock(small_world):
    """Every contract is limited with a large allowance or unlimited, valid for decades, 24x7, with phone."""
    for contract in small_world.contracts.values():
        assert contract.incidents is None or contract.incidents >= 1_000_000
        assert contract.hours.always
        assert contract.valid_from.year <= 2020
        assert contract.valid_until.year >= 2099
        assert "phone" in contract.channels


def test_the_same_seed_gives_the_same_calls(small_world):
    """Plans from two planners with one seed are identical, whatever order they are asked in."""
    catalog = Catalog.of(small_world)
    one = Planner(seed=11, mix=default_mix(), catalog=catalog)
    two = Planner(seed=11, mix=default_mix(), catalog=catalog)
    assert [one.plan(i) for i in range(200)] == [two.plan(i) for i in reversed(range(200))][::-1]


def test_another_seed_gives_other_calls(small_world):
    """Seeds 11 and 12 give different calls."""
    catalog = Catalog.of(small_world)
    one = Planner(seed=11, mix=default_mix(), catalog=catalog)
    two = Planner(seed=12, mix=default_mix(), catalog=catalog)
    assert [one.plan(i) for i in range(50)] != [two.plan(i) for i in range(50)]


def test_every_call_has_its_own_number(planner):
    """One E.164 number per call, so a run's failures never add up to a lockout."""
    numbers = [planner.plan(i).number for i in range(500)]
    assert len(set(numbers)) == 500
    assert numbers[42] == caller_number(42) == "+15550000042"


def test_kinds_follow_the_mix_weights(small_world):
    """A kind weighted 0 is never drawn; the others come in roughly their proportions."""
    mix = Mix(weights={CallKind.SALES: 1, CallKind.SUPPORT_CODE: 3, CallKind.SILENT: 0})
    planner = Planner(seed=1, mix=mix, catalog=Catalog.of(small_world))
    kinds = Counter(planner.plan(i).kind for i in range(2000))
    assert set(kinds) == {CallKind.SALES, CallKind.SUPPORT_CODE}
    assert 0.2 < kinds[CallKind.SALES] / 2000 < 0.3


def test_plans_enter_what_the_world_holds_or_what_it_does_not(small_world):
    """Codes, keys and open tickets come from the world; the wrong ones are in no part of it."""
    catalog = Catalog.of(small_world)
    planner = Planner(seed=5, mix=default_mix(), catalog=catalog)
    for i in range(600):
        plan = planner.plan(i)
        entered = plan.keys.split("#")[0][3:] if "#" in plan.keys else ""
        if plan.kind is CallKind.SUPPORT_CODE:
            assert entered in small_world.support_codes
        elif plan.kind is CallKind.LICENSE_KEY:
            assert entered in small_world.license_keys
        elif plan.kind is CallKind.TICKET:
            assert small_world.tickets[entered].status == "open"
        elif plan.kind is CallKind.CLOSED_TICKET:
            assert small_world.tickets[entered].status == "closed"
        elif plan.kind in (CallKind.WRONG_CODE, CallKind.UNKNOWN_TICKET):
            assert entered not in catalog.taken
            assert len(entered) == (10 if plan.kind is CallKind.WRONG_CODE else 7)
            assert plan.kind is CallKind.WRONG_CODE or int(entered) < 2_000_001  # never a ticket the run creates


def test_keys_are_paced_one_at_a_time_and_long_silences_only_before_menu_keys(planner):
    """A think time precedes each key; a 6 s silence (one no-input) never falls inside a digit entry."""
    silent_calls = 0
    for i in range(400):
        plan = planner.plan(i)
        keys: list[str] = []
        for before, step in zip(plan.steps, plan.steps[1:], strict=False):
            if isinstance(step, Press):
                assert len(step.keys) == 1
                assert isinstance(before, Silence)
                if before.seconds == NO_INPUT_SILENCE:
                    silent_calls += 1
                    digits_end = plan.keys.index("#") if "#" in plan.keys else len(plan.keys)
                    assert len(keys) < 3 or len(keys) > digits_end, (plan.kind, plan.keys, len(keys))
                keys.append(step.keys)
        assert all(isinstance(s, Press | Silence | HangUp) for s in plan.steps)
        assert len(plan.steps) == 2 * len(plan.beats)
    assert 10 < silent_calls < 80  # about the mix's no_input_share of 0.1


def test_the_default_mix_ships_with_the_package():
    """The default mix loads and weighs every kind of call."""
    mix = default_mix()
    assert set(mix.kinds) == set(CallKind)
    assert mix.think_seconds == (1.0, 3.0)


def test_a_mix_file_with_an_unknown_kind_names_its_line(tmp_path):
    """A typo in a mix file is reported with the file and the line."""
    path = tmp_path / "mix.yaml"
    path.write_text(textwrap.dedent("""\
        kinds:
          sales: 1
          suport_code: 3
        """))  # fmt: skip
    with pytest.raises(SourceError, match=r"mix.yaml:3: unknown kind 'suport_code'"):
        load_mix(path)


def test_a_mix_whose_think_time_would_fire_the_timer_is_refused(tmp_path):
    """Think times of 5 s or more would turn every key into a no-input: refused."""
    path = tmp_path / "mix.yaml"
    path.write_text("kinds: {sales: 1}\nthink_seconds: [1, 6]\n")
    with pytest.raises(SourceError, match="think_seconds"):
        load_mix(path)


def test_the_command_writes_the_world_a_running_ledger_needs(tmp_path):
    """`ivr load --write-world FILE` writes the seed's world, for `ivr ledger --fixture`, and runs nothing."""
    path = tmp_path / "world.yaml"
    result = CliRunner().invoke(main, ["load", "--seed", "9", "--customers", "20", "--write-world", path])
    assert result.exit_code == 0, result.output
    assert load_world(path) == replace(synthetic_world(seed=9, customers=20), support_codes={}, license_keys={})
