"""Fuzzing the scenario and fixture loaders: whatever a file holds, only their own SourceError escapes.

Three kinds of input: raw bytes; documents shaped like a scenario or a fixture whose values are
any YAML value (huge integers, NaN, dates past month's end, deep lists); and the shipped files
with a slice cut out or random text spliced in. Bounded examples and a per-example deadline keep
it within a few seconds of `make test`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, timedelta, timezone

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.directory.fixtures import load_world
from ivr.replay.scenario import load_scenario
from ivr.yamlsrc import SourceError
from tests.conftest import DEFAULT_WORLD_PATH, REPO

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),  # generous on a loaded machine; a hang or a quadratic blow-up still trips it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SHIPPED_SCENARIO = (REPO / "scenarios" / "rules" / "r02_ticket_closed.yaml").read_text(encoding="utf-8")
SHIPPED_WORLD = DEFAULT_WORLD_PATH.read_text(encoding="utf-8")

_names = itertools.count()
#: Bits of YAML syntax worth splicing in: openers left unclosed, a new item, an anchor and an alias.
_YAML_BITS = ("[", "{", ": ", "\n  - ", "&a ", "*a", "<<: *a", "!!int ", "!!timestamp ")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet="0123456789*#+ -()\uff10\uff0b\u0661", max_size=14),
    st.dates(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), st.just(timezone(timedelta(hours=-5))))),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
steps = st.lists(
    st.one_of(st.just("hangup"), st.dictionaries(st.sampled_from(["press", "silence", "hangup", "pres"]), values)),
    max_size=5,
)
#: Fixture paths a careless or hostile file might give: a NUL, a name past the system's limit, a device.
odd_paths = st.sampled_from(["a\x00b", "x" * 5000, "/dev/zero", "", ".", "/", "../" * 50])
scenario_docs = st.fixed_dictionaries(
    {
        "name": values,
        "at": values,
        "fixture": st.just(str(DEFAULT_WORLD_PATH)) | odd_paths | values,
        "caller": values,
    },
    optional={"steps": steps | values, "expect": values, "calls": values, "extra": values},
)
_FIELDS = ("id", "name", "kind", "caller_numbers", "customer", "plan", "channels", "incidents", "valid_from")
_MORE_FIELDS = ("valid_until", "hours", "code", "key", "contract", "product", "status", "caller", "description")
entries = st.lists(st.dictionaries(st.sampled_from(_FIELDS + _MORE_FIELDS), values, max_size=6), max_size=3)
world_docs = st.dictionaries(
    st.sampled_from(["customers", "contracts", "support_codes", "license_keys", "tickets", "personas", "more"]),
    entries | values,
    max_size=6,
)


def spliced(text: str) -> st.SearchStrategy[str]:
    """``text`` with a slice cut out and random text put in its place."""
    n = len(text)
    return st.builds(
        lambda start, length, insert: text[:start] + insert + text[start + length :],
        st.integers(0, n),
        st.integers(0, 40),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(_YAML_BITS),
    )


def dumped(doc: object) -> str:
    """A document as YAML text, or a placeholder when PyYAML cannot write it."""
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return "{}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One folder for every example's file (Hypothesis runs many examples per test function)."""
    return tmp_path_factory.mktemp("fuzz")


def only_source_errors(folder, content: str | bytes, load) -> None:
    """Write ``content`` to a fresh file and load it: a result or a SourceError, nothing else."""
    path = folder / f"f{next(_names)}.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    try:
        loaded = load(path)
        if load is load_scenario:
            load_world(loaded.fixture)
    except SourceError:
        pass


@FUZZ
@given(content=st.binary(max_size=600))
def test_raw_bytes(folder, content):
    """Bytes of any kind, as a scenario and as a fixture."""
    only_source_errors(folder, content, load_scenario)
    only_source_errors(folder, content, load_world)


@FUZZ
@given(doc=scenario_docs)
def test_scenario_shaped_documents(folder, doc):
    """A scenario's keys with any YAML values under them."""
    only_source_errors(folder, dumped(doc), load_scenario)


@FUZZ
@given(doc=world_docs)
def test_fixture_shaped_documents(folder, doc):
    """A fixture's sections and fields with any YAML values under them."""
    only_source_errors(folder, dumped(doc), load_world)


@FUZZ
@given(text=spliced(SHIPPED_SCENARIO))
def test_a_shipped_scenario_cut_and_spliced(folder, text):
    """A real scenario with a slice replaced: broken YAML, half keys, stray anchors."""
    only_source_errors(folder, text, load_scenario)


@FUZZ
@given(text=spliced(SHIPPED_WORLD))
def test_the_default_world_cut_and_spliced(folder, text):
    """The default world with a slice replaced."""
    only_source_errors(folder, text, load_world)
