"""The event contract as JSON Schemas (``ivr/schemas/<type>.schema.json``), and one check against it.

The schemas are what integrators code against (`docs/events.md`, `docs/asyncapi.yaml`); the ledger
checks every message with :func:`validate` and dead-letters what fails, so one malformed message
never blocks the ones behind it. The error names the event type, the field and what is wrong,
because whoever reads the dead-letter topic has only that to go on; it never repeats a support
code or license key (long digit runs are masked, as everywhere else).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from ivr.secrets import scrub

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "SCHEMA_SUFFIX",
    "InvalidEventError",
    "check_source",
    "event_types",
    "parse",
    "prepare",
    "schema_for",
    "validate",
]

SCHEMA_SUFFIX: Final = ".schema.json"
#: A reason is cut to its first and last characters (what is wrong comes last): jsonschema quotes
#: the refused value whole, and it may be 64 KiB.
_REASON_HEAD: Final = 200
_REASON_TAIL: Final = 100

#: RFC 3339 ``date-time``: jsonschema checks the format only with an optional package, so here.
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper())  # raises on 2024-02-30; 3.11 reads the Z
    return True


_FORMATS: Final = FormatChecker(formats=())
_FORMATS.checks("date-time", raises=ValueError)(_is_datetime)


class InvalidEventError(ValueError):
    """A message that is not a valid event; ``reason`` says which field and why."""

    def __init__(self, reason: str, *, event_type: str | None = None, path: str = "") -> None:
        """Say what is wrong, where, in which type of event."""
        where = f" at {path}" if path else ""
        kind = event_type or "event"
        super().__init__(f"invalid {kind}{where}: {reason}")
        self.reason = reason
        self.event_type = event_type
        self.path = path


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files("ivr") / "schemas"
    found: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(SCHEMA_SUFFIX):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            found[entry.name.removesuffix(SCHEMA_SUFFIX)] = schema
    return found


def _is_datetime_text(value: object) -> bool:
    try:
        return _is_datetime(value)
    except ValueError:
        return False


@cache
def _fast(event_type: str) -> Callable[[object], bool]:
    """Whether an event is valid, by the schema compiled in Rust (jsonschema-rs, draft 2020-12).

    ~12 us a ticket event here, against ~26 us with fastjsonschema's generated Python and ~207 us
    interpreted (``benchmarks/bus.py``'s ledger spends its time per message). ``date-time`` is
    our own check, so that this and the interpreted validator below agree on every input:
    jsonschema-rs's own accepts leap seconds and year 0, which Python's datetime rejects.
    """
    validator = jsonschema_rs.validator_for(
        _schemas()[event_type], validate_formats=True, formats={"date-time": _is_datetime_text}
    )
    return validator.is_valid


@cache
def _validator(event_type: str) -> Draft202012Validator:
    return Draft202012Validator(_schemas()[event_type], format_checker=_FORMATS)


def prepare(event_type: str) -> None:
    """Load and compile the check of ``event_type`` now, not at the first message.

    Loading checks every schema against the metaschema in Python: ~0.2 s here, which a consumer
    would otherwise spend on its first batch (5 % of a 20,000-event ledger run in a profile).
    """
    _fast(event_type)


def event_types() -> frozenset[str]:
    """Every event type that has a schema."""
    return frozenset(_schemas())


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type (a copy: safe to change)."""
    try:
        return json.loads(json.dumps(_schemas()[event_type]))  # type: ignore[no-any-return]
    except KeyError:
        msg = f"no schema for event type {event_type!r}"
        raise KeyError(msg) from None


def check_source(source: str) -> None:
    """Raise :class:`InvalidEventError` unless ``source`` may be an event's ``source`` (one rule in every schema)."""
    rule = next(iter(_schemas().values()))["properties"]["source"]
    error = best_match(Draft202012Validator(rule).iter_errors(source))
    if error is not None:
        raise InvalidEventError(error.message, path="source")


def validate(event: object) -> None:
    """Raise :class:`InvalidEventError` unless ``event`` (decoded JSON) is a valid event of a known type."""
    if not isinstance(event, dict):
        msg = f"an event is a JSON object, not {type(event).__name__}"
        raise InvalidEventError(msg)
    event_type = event.get("type")
    if not isinstance(event_type, str) or event_type not in _schemas():
        msg = f"unknown event type {event_type!r}"
        raise InvalidEventError(msg, path="type")
    if _fast(event_type)(event):
        return
    # Invalid: the interpreted validator says precisely where and why.
    error = best_match(_validator(event_type).iter_errors(event))
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "not" and path.endswith("detail"):
            reason = "holds an unmasked support code or license key (a run of 8 or more digits)"
        else:
            reason = scrub(error.message)  # the reason travels to the dead-letter topic and logs
            if len(reason) > _REASON_HEAD + _REASON_TAIL:
                reason = f"{reason[:_REASON_HEAD]} ...({len(reason)} characters)... {reason[-_REASON_TAIL:]}"
        raise InvalidEventError(reason, event_type=event_type, path=path)


def parse(payload: bytes | str) -> dict[str, Any]:
    """Decode a message body as JSON and :func:`validate` it: what a consumer does first."""
    try:
        event = orjson.loads(payload)  # ~4 us against json's ~12 us for a ticket event here
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON ({exc})"
        raise InvalidEventError(msg) from None
    validate(event)
    return event  # type: ignore[no-any-return]
