"""Scenario files: the public format the telephony team writes by hand (`docs/scenarios.md`).

Parsing checks everything up front and reports the file, the line and what is wrong, so a typo
in one file is a clear error for that file while the others still run. Keys pressed may be a
support code or a license key, so an error shows them masked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ivr import worlds
from ivr.auth.decisions import Reason, Rule
from ivr.callers import HANGUP, KEYS, Press, Silence, Step
from ivr.directory.fixtures import load_world
from ivr.phone import InvalidNumberError, normalize
from ivr.replay.expectations import Absent, DecisionMatch, EventMatch, parse_absent, parse_decisions, parse_events
from ivr.secrets import mask
from ivr.states.flow import STATES, Kind
from ivr.states.prompts import PROMPTS
from ivr.yamlsrc import UNQUOTED_DIGITS, LinedDict, LinedList, SourceError, line_of, load_file, shown

__all__ = [
    "GAP_SECONDS",
    "CallSpec",
    "Expect",
    "Scenario",
    "discover",
    "load_scenario",
    "resolve_keys",
    "scenario_from",
]

_OUTCOMES: Final = frozenset(n for n, s in STATES.items() if s.kind is Kind.FINAL)
_EXPECT_KEYS: Final = frozenset(
    {"outcome", "reason", "rule", "prompts", "events", "states", "queue", "priority", "deducted", "ticket"}
    | {"absent", "decisions"},
)
_CALL_KEYS: Final = frozenset({"caller", "at", "steps", "expect"})
_TOP_KEYS: Final = frozenset({"name", "at", "fixture", "world", "description", "calls"}) | _CALL_KEYS
_PLACEHOLDER: Final = re.compile(r"\{ticket(?::(\d+))?\}")
#: A call with no ``at`` of its own starts this long after the previous call ended.
GAP_SECONDS: Final = 30.0
#: The years an ``at`` may fall in: wide for any test, and far from the ends of Python's calendar,
#: which a call's clock (silences, the lockout's look-back) must not run past.
YEARS: Final = range(1970, 3000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What one call must do; ``None`` or empty means "not checked"."""

    outcome: str | None = None
    reason: str | None = None
    rule: str | None = None
    prompts: tuple[str, ...] = ()
    events: tuple[EventMatch, ...] = ()
    states: tuple[str, ...] = ()
    queue: str | None = None
    priority: int | None = None
    ticket: str | None = None
    deducted: dict[str, int] | None = None
    absent: Absent = field(default_factory=Absent)
    decisions: tuple[DecisionMatch, ...] = ()
    line: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSpec:
    """One scripted call: who calls, when, the steps, and what must happen."""

    caller: str
    at: datetime | None
    steps: tuple[Step, ...]
    expect: Expect
    line: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A scenario file: a start time, a fixture world and one or more calls run in order."""

    path: Path
    name: str
    at: datetime
    fixture: Path
    calls: tuple[CallSpec, ...]
    description: str = ""
    example: int | None = None  # the row of `examples:` this run fills in (1-based)

    @property
    def label(self) -> str:
        """How reports name the scenario: its file's stem, and ``[N]`` for a row of its examples."""
        return self.path.stem if self.example is None else f"{self.path.stem}[{self.example}]"


class _Reader:
    """Field access on one mapping, raising located errors."""

    def __init__(self, path: Path, raw: LinedDict, what: str) -> None:
        self.path, self.raw, self.what = path, raw, what

    def fail(self, message: str, key: Any = None) -> SourceError:  # noqa: ANN401
        return SourceError(self.path, line_of(self.raw, key), f"{self.what}: {message}")

    def check_keys(self, allowed: frozenset[str]) -> None:
        for key in self.raw:
            if key not in allowed:
                raise self.fail(f"unknown key {shown(key)}; expected one of {', '.join(sorted(allowed))}", key)

    def text(self, key: str, *, required: bool = True) -> str | None:
        if key not in self.raw:
            if required:
                raise self.fail(f"missing '{key}'")
            return None
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(f"'{key}' must be text, not {type(value).__name__}", key)
        return str(value)

    def digits(self, key: str) -> str | None:
        """Text that is digits (a ticket ID): written quoted, since YAML turns ``0012`` into 10."""
        if isinstance(self.raw.get(key), int):
            raise self.fail(f"'{key}' must be text: {UNQUOTED_DIGITS}", key)
        return self.text(key, required=False)

    def caller(self) -> str:
        """The calling number, in E.164: the lockout counts per line however the file writes it."""
        if "caller" not in self.raw:
            raise self.fail("missing 'caller'")
        value = self.raw["caller"]
        if isinstance(value, int) and not isinstance(value, bool):
            raise self.fail(
                f"'caller' must be text: {UNQUOTED_DIGITS} and the '+' (caller: \"+15550100001\")", "caller"
            )
        if not isinstance(value, str):
            raise self.fail(f"'caller' must be text, not {type(value).__name__}", "caller")
        try:
            return normalize(value)
        except InvalidNumberError as exc:
            raise self.fail(str(exc), "caller") from None

    def instant(self, key: str, *, required: bool) -> datetime | None:
        if key not in self.raw:
            if required:
                raise self.fail(f"missing '{key}' (ISO-8601 with an offset, e.g. 2026-11-16T10:00:00-05:00)")
            return None
        value = self.raw[key]
        try:
            instant = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise self.fail(f"'{key}' is not an ISO-8601 date-time: {shown(value)}", key) from None
        if instant.tzinfo is None:
            raise self.fail(f"'{key}' needs a UTC offset (support hours depend on it): {instant.isoformat()}", key)
        if instant.year not in YEARS:
            raise self.fail(f"'{key}' must fall in the years {YEARS.start} to {YEARS.stop - 1}", key)
        return instant

    def names(self, key: str, known: frozenset[str] | dict[str, Any]) -> tuple[str, ...]:
        if key not in self.raw:
            return ()
        value = self.raw[key]
        if not isinstance(value, LinedList):
            raise self.fail(f"'{key}' must be a list", key)
        out = []
        for i, item in enumerate(value):
            name = item
            if not isinstance(name, str) or name not in known:
                raise SourceError(self.path, line_of(value, i), f"{self.what}: unknown {key[:-1]} {shown(item)}")
            out.append(name)
        return tuple(out)


_REASONS: Final = frozenset(r.value for r in Reason)
_RULES: Final = frozenset(r.value for r in Rule)


def _expect(path: Path, raw: Any, what: str) -> Expect:  # noqa: ANN401
    if raw is None:
        return Expect()
    if not isinstance(raw, LinedDict):
        raise SourceError(path, None, f"{what}: 'expect' must be a mapping")
    r = _Reader(path, raw, f"{what} expect")
    r.check_keys(_EXPECT_KEYS)
    outcome, reason, rule = (
        r.text("outcome", required=False),
        r.text("reason", required=False),
        r.text("rule", required=False),
    )
    for key, value, allowed in (("outcome", outcome, _OUTCOMES), ("reason", reason, _REASONS), ("rule", rule, _RULES)):
        if value is not None and value not in allowed:
            raise r.fail(f"unknown {key} {shown(value)}; expected one of {', '.join(sorted(allowed))}", key)
    priority = raw.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise r.fail("'priority' must be a whole number", "priority")
    deducted = raw.get("deducted")
    if deducted is not None and not (
        isinstance(deducted, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in deducted.values())
    ):
        raise r.fail("'deducted' must map contract IDs to whole numbers of incidents", "deducted")
    return Expect(
        outcome=outcome,
        reason=reason,
        rule=rule,
        prompts=r.names("prompts", PROMPTS),
        events=parse_events(path, raw, f"{what} expect"),
        states=r.names("states", STATES),
        queue=r.text("queue", required=False),
        priority=priority,
        ticket=r.digits("ticket"),
        deducted={str(k): v for k, v in deducted.items()} if deducted is not None else None,
        absent=parse_absent(path, raw, f"{what} expect"),
        decisions=parse_decisions(path, raw, f"{what} expect"),
        line=raw.line,
    )


def _press(path: Path, line: int | None, what: str, value: object, call_index: int) -> Press:
    """A ``press`` step; the keys may be a code or a key, so an error shows them masked."""
    if not isinstance(value, str):
        why = UNQUOTED_DIGITS if isinstance(value, int) and not isinstance(value, bool) else "keys are text"
        raise SourceError(path, line, f'{what}: press must be quoted keys (press: "0123#"): {why}')
    for match in _PLACEHOLDER.finditer(value):
        ref = int(match.group(1)) if match.group(1) else None
        if ref is not None and not 1 <= ref < call_index + 1:
            raise SourceError(path, line, f"{what}: {match.group(0)} must name an earlier call (1..{call_index})")
    bad = "".join(sorted(set(_PLACEHOLDER.sub("", value)) - KEYS))
    if bad or not value:
        message = f"press {shown(mask(value))} has keys a phone does not have: {shown(bad)[1:-1]}"
        raise SourceError(path, line, f"{what}: {message}")
    return Press(value)


def _steps(path: Path, raw: Any, what: str, call_index: int) -> tuple[Step, ...]:  # noqa: ANN401
    if not isinstance(raw, LinedList):
        raise SourceError(path, None, f"{what}: 'steps' must be a list")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        line = line_of(raw, i)
        if item == "hangup":
            steps.append(HANGUP)
            continue
        if not isinstance(item, LinedDict) or len(item) != 1:
            raise SourceError(path, line, f"{what}: a step is 'press: KEYS', 'silence: SECONDS' or 'hangup'")
        ((kind, value),) = item.items()
        if kind == "press":
            steps.append(_press(path, line, what, value, call_index))
        elif kind == "silence":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise SourceError(path, line, f"{what}: silence must be a positive number of seconds")
            steps.append(Silence(float(value)))
        elif kind == "hangup":
            steps.append(HANGUP)
        else:
            raise SourceError(path, line, f"{what}: unknown step {shown(kind)}; expected press, silence or hangup")
    return tuple(steps)


def _call(path: Path, raw: Any, what: str, index: int) -> CallSpec:  # noqa: ANN401
    if not isinstance(raw, LinedDict):
        raise SourceError(path, None, f"{what} must be a mapping")
    r = _Reader(path, raw, what)
    if what != "scenario":  # an item of 'calls' (a single-call file's keys were checked whole)
        r.check_keys(_CALL_KEYS)
    caller = r.caller()
    if "steps" not in raw:
        raise r.fail("missing 'steps'")
    return CallSpec(
        caller=caller,
        at=r.instant("at", required=False),
        steps=_steps(path, raw["steps"], what, index),
        expect=_expect(path, raw.get("expect"), what),
        line=raw.line,
    )


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file."""
    return scenario_from(path, load_file(path))


def scenario_from(path: Path, doc: Any) -> Scenario:  # noqa: ANN401 - YAML is whatever the file holds
    """Check the parsed YAML of scenario file ``path``."""
    if not isinstance(doc, LinedDict):
        raise SourceError(path, 1, "a scenario must be a mapping (name, at, fixture, caller/steps or calls)")
    r = _Reader(path, doc, "scenario")
    r.check_keys(_TOP_KEYS)
    name = r.text("name")
    at = r.instant("at", required=True)
    assert name is not None  # noqa: S101 - required above
    assert at is not None  # noqa: S101 - required above
    fixture_path = _world(r, path, doc)
    if "calls" in doc:
        if any(k in doc for k in ("caller", "steps", "expect")):
            raise r.fail("give either 'calls' or one call's 'caller'/'steps'/'expect', not both", "calls")
        calls_raw = doc["calls"]
        if not isinstance(calls_raw, LinedList) or not calls_raw:
            raise r.fail("'calls' must be a non-empty list", "calls")
        calls = tuple(_call(path, c, f"calls[{i + 1}]", i) for i, c in enumerate(calls_raw))
    else:
        calls = (_call(path, doc, "scenario", 0),)
    return Scenario(
        path=path,
        name=name,
        at=at,
        fixture=fixture_path,
        calls=calls,
        description=r.text("description", required=False) or "",
    )


def _world(r: _Reader, path: Path, doc: LinedDict) -> Path:
    """The fixture world's file: a packaged world, a file beside the scenario, or the world embedded in it."""
    if "world" in doc:
        if "fixture" in doc:
            raise r.fail("give either 'fixture' or an embedded 'world', not both", "world")
        return _embedded(r, doc["world"])
    fixture = r.text("fixture")
    assert fixture is not None  # noqa: S101 - required above
    try:
        fixture_path = worlds.packaged(fixture) or (path.parent / fixture).resolve()
        found = fixture_path.is_file()
    except (OSError, ValueError) as exc:  # a NUL in the name, or a name longer than the system allows
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise r.fail(f"fixture {shown(fixture)} cannot be a file's name: {why}", "fixture") from None
    if not found:
        known = ", ".join(worlds.names())
        raise r.fail(
            f"fixture {shown(fixture)} is no packaged world ({known}) and no file (looked at {fixture_path})", "fixture"
        )
    return fixture_path


def _embedded(r: _Reader, text: object) -> Path:
    """The file of a world embedded under ``world:`` (a fixture file's text), checked now."""
    if not isinstance(text, str):
        raise r.fail("'world' must be a fixture world's text (a YAML block: world: |)", "world")
    path = worlds.embedded(text)
    try:
        load_world(path)
    except SourceError as exc:
        where = f"line {exc.line} of it" if exc.line else "it"
        raise r.fail(
            f"the world embedded under 'world' is not a fixture world ({where}): {exc.message}", "world"
        ) from None
    return path


def discover(paths: list[Path]) -> list[Path]:
    """Scenario files under ``paths`` (files as given; folders searched for ``*.yaml``, fixtures left out)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.yaml")) if "fixtures" not in p.relative_to(path).parts)
        else:
            found.append(path)
    return found


def resolve_keys(keys: str, tickets: list[str | None]) -> str:
    """Fill ``{ticket}`` (the newest ticket an earlier call created) and ``{ticket:N}`` (call N's)."""

    def fill(match: re.Match[str]) -> str:
        ref = match.group(1)
        ticket = tickets[int(ref) - 1] if ref else next((t for t in reversed(tickets) if t), None)
        if ticket is None:
            msg = f"{match.group(0)}: no earlier call created a ticket"
            raise LookupError(msg)
        return ticket

    return _PLACEHOLDER.sub(fill, keys)
