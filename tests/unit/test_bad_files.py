"""Careless or hostile scenario and fixture files: each is a ``file:line: what`` error, never a traceback or a hang."""

from __future__ import annotations

import os

import pytest

from ivr.directory.fixtures import load_world
from ivr.replay.scenario import load_scenario
from ivr.yamlsrc import MAX_BYTES, SourceError
from tests.conftest import DEFAULT_WORLD_PATH

HEAD = "customers:\n  - {id: C-A, name: A, kind: consumer}\ncontracts:\n"
CONTRACT = (
    "  - {id: K-X, customer: C-A, plan: standard, incidents: 1, valid_from: 2026-01-01, valid_until: 2027-01-01}\n"
)
CODES = HEAD + CONTRACT + "support_codes:\n"


def contract(old: str, new: str) -> str:
    """The one-contract world with ``old`` replaced by ``new`` in the contract (line 4)."""
    return HEAD + CONTRACT.replace(old, new)


def scenario(*, caller: str = '"+15550199999"', step: str = '  - press: "1"', at: str = "2026-11-17T10:00:00-05:00"):
    """A one-call scenario, a field a line: at is line 2, caller line 4, the step line 6, expect.ticket line 8."""
    return (
        f"name: x\nat: {at}\nfixture: {DEFAULT_WORLD_PATH}\ncaller: {caller}\nsteps:\n{step}\n"
        'expect:\n  ticket: "1000001"\n'
    )


def located(load, path, line, message):
    """``load(path)`` raises a SourceError at ``path:line`` whose message holds ``message``; gives the error."""
    with pytest.raises(SourceError) as caught:
        load(path)
    assert (caught.value.path, caught.value.line) == (path, line), str(caught.value)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: " if line else f"{path}: ")
    return caught.value


FIXTURES = [
    pytest.param(
        contract("incidents: 1", "incidents: 99999999999999999999999"),
        4,
        "'incidents' must be a whole number from 0 to 1,000,000,000",
        id="incidents-past-any-integer-column",
    ),
    pytest.param(contract("valid_from: 2026-01-01", "valid_from: 2026-02-30"), 4, "'2026-02-30'", id="feb-30"),
    pytest.param(
        contract("valid_from: 2026-01-01", "valid_from: 2026-01-01T10:00:00"),
        4,
        "'valid_from' must be a day (2026-01-01), not the date-time 2026-01-01T10:00:00",
        id="datetime-for-a-date",
    ),
    pytest.param(
        CODES + '  - {code: "\uff11\uff12\uff13\uff14\uff15\uff10\uff10\uff10\uff10\uff11", contract: K-X}\n',
        6,
        "'code' must be exactly 10 digits 0-9",
        id="full-width-digits",
    ),
    pytest.param(
        CODES + '  - {code: "\u0661\u0662\u0663\u0664\u0665\u0660\u0660\u0660\u0660\u0661", contract: K-X}\n',
        6,
        "'code' must be exactly 10 digits 0-9",
        id="arabic-indic-digits",
    ),
    pytest.param(contract("}", ", colour: red}"), 4, "unknown field 'colour'", id="unknown-field"),
    pytest.param(
        HEAD.replace("kind: consumer}", "kind: consumer, caller_number: '+15550100001'}"),
        2,
        "customers[0] (C-A): unknown field 'caller_number'",
        id="unknown-field-typo",
    ),
    pytest.param(
        contract("}", ", hours: {days: mon-fri, form: '09:00'}}"),
        4,
        "bad 'hours': unknown field 'form'",
        id="unknown-hours-field",
    ),
    pytest.param(contract("}", ", hours: {tz: America}}"), 4, "no time zone 'America'", id="tz-a-folder"),
    pytest.param("customers: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested deeper than 32 levels", id="5000-brackets"),
    pytest.param(
        HEAD + CONTRACT + "personas:\n  - {id: p, description: d, caller: +15550100001}\n",
        6,
        "'caller' must be text: quote it",
        id="unquoted-persona-caller",
    ),
    pytest.param(
        HEAD + CONTRACT + "personas:\n  - {id: p, description: d, caller: '555 0100'}\n",
        6,
        "is not a telephone number",
        id="persona-caller-no-number",
    ),
    pytest.param(CODES + "  - {code: 1234500001, contract: K-X}\n", 6, "'code' must be text: quote it", id="unquoted"),
    pytest.param("customers:\n  ? [a]\n  : 1\n", 2, "a key must be a plain value", id="list-as-key"),
]


@pytest.mark.parametrize(("text", "line", "message"), FIXTURES)
def test_a_bad_fixture_is_a_located_error(tmp_path, text, line, message):
    """Each bad fixture is a SourceError naming the file and the line, never another exception or a silent load."""
    path = tmp_path / "world.yaml"
    path.write_text(text, encoding="utf-8")
    located(load_world, path, line, message)


SCENARIOS = [
    pytest.param(scenario(at="9999-12-31T23:59:59-05:00"), 2, "'at' must fall in the years 1970 to 2999", id="at-9999"),
    pytest.param(scenario(step="  - silence: .nan"), 6, "silence must be a positive number", id="nan-silence"),
    pytest.param(scenario(step="  - silence: .inf"), 6, "silence must be a positive number", id="inf-silence"),
    pytest.param(scenario(caller="+15550100001"), 4, "'caller' must be text: quote it", id="unquoted-caller"),
    pytest.param(scenario(caller='""'), 4, "is not a telephone number", id="empty-caller"),
    pytest.param(scenario(caller='"+1555"'), 4, "is not a telephone number (too short)", id="short-caller"),
    pytest.param(scenario(step="  - press: 0012"), 6, "press must be quoted keys", id="octal-press"),
    pytest.param(scenario(step="  - press: 0012345670"), 6, "press must be quoted keys", id="unquoted-digits"),
    pytest.param(scenario().replace('ticket: "1000001"', "ticket: 0100001"), 8, "'ticket' must be text", id="ticket"),
    pytest.param(scenario(at="2026-11-17T10:00:00+25:00"), 2, "cannot read", id="offset-past-a-day"),
]


@pytest.mark.parametrize(("text", "line", "message"), SCENARIOS)
def test_a_bad_scenario_is_a_located_error(tmp_path, text, line, message):
    """Each bad scenario is a SourceError naming the file and the line, not a different value or a crash later."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    located(load_scenario, path, line, message)


@pytest.mark.parametrize("load", [load_world, load_scenario], ids=["fixture", "scenario"])
def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path, load):
    """Latin-1 text is refused at the line of its first byte that is not UTF-8."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"customers:\n  - {id: C-\xe9, name: A, kind: consumer}\n")
    located(load, path, 2, "not UTF-8 text: byte 0xe9")


@pytest.mark.parametrize("load", [load_world, load_scenario], ids=["fixture", "scenario"])
def test_a_file_over_the_size_cap_is_refused_without_being_read_whole(tmp_path, load):
    """A file one byte over the cap is refused by its size; nothing larger is read into memory."""
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    located(load, path, None, "larger than 2 MiB")


def test_a_fifo_is_refused_instead_of_waited_on(tmp_path):
    """A named pipe where a fixture should be is refused at once: opening it would wait for a writer forever."""
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    located(load_world, path, None, "not a regular file")


def test_a_duplicate_support_code_is_named_masked(tmp_path):
    """A duplicate code's error shows the last two digits at most, never the whole secret."""
    path = tmp_path / "world.yaml"
    path.write_text(CODES + '  - {code: "1234500001", contract: K-X}\n' * 2, encoding="utf-8")
    error = located(load_world, path, 7, "support_codes[1]: duplicate code '********01' (first at entry 0)")
    assert "1234500001" not in str(error)


@pytest.mark.parametrize(
    ("entry", "secret"),
    [
        ("  - {code: 1234500001.0, contract: K-X}\n", "1234500001"),
        ("  - {code: [1234500001], contract: K-X}\n", "1234500001"),
    ],
    ids=["float", "list"],
)
def test_a_malformed_support_code_is_never_shown_whole(tmp_path, entry, secret):
    """However a code is mistyped, its error does not repeat it."""
    path = tmp_path / "world.yaml"
    path.write_text(CODES + entry, encoding="utf-8")
    error = located(load_world, path, 6, "'code' must be")
    assert secret not in str(error)


def test_a_press_with_a_bad_key_shows_the_keys_masked(tmp_path):
    """``press '1234500001#x'``: the error names the bad key but not the code typed before it."""
    path = tmp_path / "bad.yaml"
    path.write_text(scenario(step='  - press: "1234500001#x"'), encoding="utf-8")
    error = located(load_scenario, path, 6, "press '**********#x' has keys a phone does not have: x")
    assert "1234500001" not in str(error)


@pytest.mark.parametrize(
    "written",
    ["15550100001", "+1 555 010 0001", "+1-555-010-0001", "(555) 010-0001", " +15550100001", "\uff0b15550100001"],
)
def test_a_scenario_caller_is_read_in_e164(tmp_path, written):
    """A caller written any way a person might is the same E.164 number once read."""
    path = tmp_path / "call.yaml"
    path.write_text(scenario(caller=f'"{written}"'), encoding="utf-8")
    assert load_scenario(path).calls[0].caller == "+15550100001"


def test_fixture_numbers_are_read_in_e164(tmp_path):
    """A customer's numbers and a persona's caller are stored in E.164, whatever their format in the file."""
    path = tmp_path / "world.yaml"
    text = HEAD.replace("kind: consumer}", "kind: consumer, caller_numbers: ['(555) 010-0001']}")
    path.write_text(text + CONTRACT + "personas:\n  - {id: p, description: d, caller: '1-555-010-0001'}\n", "utf-8")
    world = load_world(path)
    assert world.customers["C-A"].caller_numbers == ("+15550100001",)
    assert world.personas["p"].caller == "+15550100001"


def test_a_code_yaml_cannot_build_is_not_shown_whole(tmp_path):
    """A code under a tag it does not fit (``!!int 1234500001x``): the YAML error masks it too."""
    path = tmp_path / "world.yaml"
    path.write_text(CODES + "  - {code: !!int 1234500001x, contract: K-X}\n", encoding="utf-8")
    error = located(load_world, path, 6, "cannot read '********01x' as int")
    assert "1234500001" not in str(error)


@pytest.mark.parametrize("fixture", ['"a\\0b"', "x" * 5000], ids=["nul", "name-too-long"])
def test_a_fixture_path_no_file_can_have_is_a_located_error(tmp_path, fixture):
    """A fixture named with a NUL or past the system's name length is refused at its line, not an OSError."""
    path = tmp_path / "bad.yaml"
    path.write_text(scenario().replace(f"fixture: {DEFAULT_WORLD_PATH}", f"fixture: {fixture}"), encoding="utf-8")
    located(load_scenario, path, 3, "cannot be a file's name")
