"""The richer expectation keys: events matched by their data, decisions in order, and ``absent``.

Kept apart from `ivr.replay.scenario` (which reads the file's shape) so each key's parsing and
checking sit side by side. Every parse error names the file and line, like the loader's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ivr.auth.decisions import Reason, Rule
from ivr.events import EventType
from ivr.states.flow import STATES
from ivr.states.prompts import PROMPTS
from ivr.yamlsrc import LinedDict, LinedList, SourceError, line_of, shown

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ivr.auth.decisions import Decision
    from ivr.engine import CallRecord
    from ivr.events import CloudEvent

__all__ = [
    "Absent",
    "DecisionMatch",
    "EventMatch",
    "check_absent",
    "check_decisions",
    "event_name",
    "parse_absent",
    "parse_decisions",
    "parse_events",
]

_EVENT_TYPES: Final = frozenset(e.value for e in EventType)
_RULES: Final = frozenset(r.value for r in Rule)
_REASONS: Final = frozenset(r.value for r in Reason)
_ABSENT_KEYS: Final = ("events", "prompts", "states")
_DECISION_KEYS: Final = frozenset({"rule", "granted", "reason"})


def event_name(name: str) -> str:
    """``call.started`` and ``ivr.call.started`` name the same event type."""
    return name if name.startswith("ivr.") else f"ivr.{name}"


@dataclass(frozen=True, slots=True)
class EventMatch:
    """An event of ``type`` whose data holds every field of ``data`` with that value."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def matches(self, event: CloudEvent) -> bool:
        """Same type, and each named data field equal (a field the event lacks never matches)."""
        return event.type == self.type and all(k in event.data and event.data[k] == v for k, v in self.data.items())

    def __str__(self) -> str:
        """``ivr.ticket.created {deduct: False}``, or the bare type."""
        fields = ", ".join(f"{k}: {v}" for k, v in self.data.items())
        return f"{self.type} {{{fields}}}" if self.data else self.type


@dataclass(frozen=True, slots=True)
class DecisionMatch:
    """A decision by ``rule``; ``granted`` and ``reason`` checked when given."""

    rule: str
    granted: bool | None = None
    reason: str | None = None

    def matches(self, decision: Decision) -> bool:
        """Same rule, and the same verdict and reason where named."""
        return (
            str(decision.rule) == self.rule
            and (self.granted is None or decision.granted == self.granted)
            and (self.reason is None or str(decision.reason) == self.reason)
        )

    def __str__(self) -> str:
        """``R2 denied ticket_closed``, ``R4 granted``, ``R2``."""
        verdict = "" if self.granted is None else (" granted" if self.granted else " denied")
        return f"{self.rule}{verdict}{' ' + self.reason if self.reason else ''}"


@dataclass(frozen=True, slots=True)
class Absent:
    """What must not happen in the call at all."""

    events: tuple[EventMatch, ...] = ()
    prompts: tuple[str, ...] = ()
    states: tuple[str, ...] = ()


def _fail(path: Path, container: object, key: object, message: str) -> SourceError:
    return SourceError(path, line_of(container, key), message)


def parse_events(path: Path, parent: LinedDict, what: str) -> tuple[EventMatch, ...]:
    """``parent['events']``: names (``ticket.created``) or mappings ``{type: ..., data: {...}}``."""
    raw = parent.get("events")
    if raw is None:
        return ()
    if not isinstance(raw, LinedList):
        raise _fail(path, parent, "events", f"{what}: 'events' must be a list")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, LinedDict):
            unknown = sorted(set(item) - {"type", "data"})
            if unknown or "type" not in item:
                raise _fail(path, raw, i, f"{what}: an event is a name or {{type: NAME, data: {{FIELD: VALUE}}}}")
            name, data = event_name(str(item["type"])), item.get("data", {})
            if not isinstance(data, dict):
                raise _fail(path, item, "data", f"{what}: an event's 'data' must be a mapping of fields to values")
        else:
            name, data = event_name(str(item)), {}
        if name not in _EVENT_TYPES:
            raise _fail(path, raw, i, f"{what}: unknown event {shown(name)}")
        out.append(EventMatch(name, {str(k): v for k, v in data.items()}))
    return tuple(out)


def _names(path: Path, parent: LinedDict, key: str, known: Any, what: str) -> tuple[str, ...]:  # noqa: ANN401
    raw = parent.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, LinedList):
        raise _fail(path, parent, key, f"{what}: '{key}' must be a list")
    for i, item in enumerate(raw):
        if str(item) not in known:
            raise _fail(path, raw, i, f"{what}: unknown {key[:-1]} {shown(item)}")
    return tuple(str(item) for item in raw)


def parse_absent(path: Path, parent: LinedDict, what: str) -> Absent:
    """``parent['absent']``: ``{events: [...], prompts: [...], states: [...]}``."""
    raw = parent.get("absent")
    if raw is None:
        return Absent()
    if not isinstance(raw, LinedDict):
        raise _fail(path, parent, "absent", f"{what}: 'absent' must be a mapping of events, prompts and/or states")
    for key in raw:
        if key not in _ABSENT_KEYS:
            raise _fail(
                path, raw, key, f"{what} absent: unknown key {shown(key)}; expected one of {', '.join(_ABSENT_KEYS)}"
            )
    where = f"{what} absent"
    return Absent(
        events=parse_events(path, raw, where),
        prompts=_names(path, raw, "prompts", PROMPTS, where),
        states=_names(path, raw, "states", STATES, where),
    )


def parse_decisions(path: Path, parent: LinedDict, what: str) -> tuple[DecisionMatch, ...]:
    """``parent['decisions']``: ``[{rule: R2, granted: false, reason: ticket_closed}, ...]``."""
    raw = parent.get("decisions")
    if raw is None:
        return ()
    if not isinstance(raw, LinedList):
        raise _fail(path, parent, "decisions", f"{what}: 'decisions' must be a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, LinedDict) or "rule" not in item:
            raise _fail(path, raw, i, f"{what}: a decision is {{rule: RULE, granted: true|false, reason: REASON}}")
        for key in item:
            if key not in _DECISION_KEYS:
                message = f"{what}: unknown decision key {shown(key)}; expected granted, reason, rule"
                raise _fail(path, item, key, message)
        rule, granted, reason = str(item["rule"]), item.get("granted"), item.get("reason")
        if rule not in _RULES:
            raise _fail(path, item, "rule", f"{what}: unknown rule {shown(rule)}")
        if granted is not None and not isinstance(granted, bool):
            raise _fail(path, item, "granted", f"{what}: 'granted' must be true or false")
        if reason is not None and str(reason) not in _REASONS:
            raise _fail(path, item, "reason", f"{what}: unknown reason {shown(reason)}")
        out.append(DecisionMatch(rule, granted, None if reason is None else str(reason)))
    return tuple(out)


def subsequence(want: Sequence[Any], got: Sequence[Any]) -> Any | None:  # noqa: ANN401
    """``None`` if every item of ``want`` matches, in order, an item of ``got``; else the first that did not.

    An item matches by ``matches`` when it has one (events, decisions), else by equality.
    """
    it = iter(got)
    for item in want:
        match = getattr(item, "matches", None)
        if not any((match(g) if match else item == g) for g in it):
            return item
    return None


def check_decisions(want: Sequence[DecisionMatch], decisions: Sequence[Decision]) -> list[str]:
    """The decisions expected, in order, against those the call made."""
    missing = subsequence(want, decisions)
    if missing is None:
        return []
    got = [str(DecisionMatch(str(d.rule), d.granted, None if d.reason is None else str(d.reason))) for d in decisions]
    return [f"decisions: expected {[str(w) for w in want]} in order; '{missing}' missing from {got}"]


def check_absent(absent: Absent, record: CallRecord) -> list[str]:
    """Every event, prompt and state the call should not have had but did."""
    failures = [
        f"absent: event '{want}' happened (#{event.sequence})"
        for want in absent.events
        for event in record.events
        if want.matches(event)
    ]
    failures.extend(f"absent: prompt '{p}' was played" for p in absent.prompts if p in record.call.prompts)
    failures.extend(f"absent: state '{s}' was entered" for s in absent.states if s in record.call.path)
    return failures
