"""What the page may send over its WebSocket, checked before anything acts on it.

The page is ours, but a WebSocket takes any text: every message is parsed here into one typed
command, and anything else is a :class:`BadMessageError` whose text goes back to the page as it is
(so it says what was wrong and what was expected, in words a trainer can act on).

Messages are JSON objects with a ``type``:

- ``{"type": "call", "persona": ID, "at": "2026-11-17T10:00", "zone": "America/New_York"}``
  (``at`` may instead carry its own offset; ``zone`` defaults to US Eastern, the support centre's)
- ``{"type": "key", "key": "0"-"9" | "*" | "#"}``
- ``{"type": "silence"}``, ``{"type": "hangup"}``, ``{"type": "pause"}``, ``{"type": "resume"}``
- ``{"type": "open", "name": FILE_NAME, "text": YAML}``: play a scenario file back on the diagram
  (the one message that may be long: a scenario with its world embedded)
- ``{"type": "reset"}``: the page's session world back to the fixture world (refused while calls run in it)
- ``{"type": "reveal", "persona": ID}``: the support code or license key that persona types, asked
  for by the card's "show code" (the page is sent codes and keys masked, and whole only so)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.callers import KEYS

__all__ = [
    "CONTROLS",
    "BadMessageError",
    "Command",
    "Control",
    "KeyPress",
    "OpenScenario",
    "Reset",
    "Reveal",
    "StartCall",
    "parse",
]

#: Commands that act on the running call and carry nothing else.
CONTROLS: Final = ("silence", "hangup", "pause", "resume")
_MAX_LENGTH: Final = 4096
#: An opened scenario's message may be this long (characters), its world embedded in it included.
_MAX_OPEN: Final = 200_000
_DEFAULT_ZONE: Final = "America/New_York"

ControlName = Literal["silence", "hangup", "pause", "resume"]


class BadMessageError(ValueError):
    """A message the console cannot act on; the text says why, for the page."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StartCall:
    """Place a call as ``persona`` at the instant ``at`` (timezone-aware)."""

    persona: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPress:
    """One phone key."""

    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """Silence now, hang up, or pause or resume the no-input countdown."""

    action: ControlName


@dataclass(frozen=True, slots=True, kw_only=True)
class Reveal:
    """Show ``persona``'s support code or license key on its card."""

    persona: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """Put the page's session world back as the fixture describes it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenScenario:
    """Play the scenario file ``name`` (its ``text``) back on the diagram."""

    name: str
    text: str


Command = StartCall | KeyPress | Control | Reveal | Reset | OpenScenario


def _instant(raw: object, zone: object) -> datetime:
    if not isinstance(raw, str) or not raw:
        raise BadMessageError("a call needs 'at': a date and time such as 2026-11-17T10:00")
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        raise BadMessageError(f"'at' is not a date and time: {raw!r} (expected e.g. 2026-11-17T10:00)") from None
    if instant.tzinfo is not None:
        return instant
    name = _DEFAULT_ZONE if zone is None else zone
    if not isinstance(name, str):
        raise BadMessageError("'zone' must be a time zone name such as America/New_York")
    try:
        return instant.replace(tzinfo=ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadMessageError(f"unknown time zone {name!r} (expected e.g. America/New_York)") from None


def parse(text: str | bytes) -> Command:
    """One message from the page as a command; :class:`BadMessageError` says what is wrong."""
    if len(text) > _MAX_OPEN:
        raise BadMessageError(f"message too long ({len(text)} characters; at most {_MAX_OPEN})")
    try:
        raw = json.loads(text)
    except ValueError:
        raise BadMessageError("not a JSON message") from None
    if not isinstance(raw, dict):
        raise BadMessageError("a message is a JSON object with a 'type'")
    kind = raw.get("type")
    if kind == "open":
        return _open(raw)
    if len(text) > _MAX_LENGTH:
        raise BadMessageError(f"message too long ({len(text)} characters; at most {_MAX_LENGTH})")
    if kind == "reset":
        return Reset()
    return _command(kind, raw)


def _open(raw: dict[str, object]) -> OpenScenario:
    name, text = raw.get("name"), raw.get("text")
    if not isinstance(name, str) or not name or not isinstance(text, str):
        raise BadMessageError("an open needs the scenario file's 'name' and its 'text'")
    return OpenScenario(name=name, text=text)


def _command(kind: object, raw: dict[str, object]) -> Command:
    if kind in {"call", "reveal"}:
        persona = raw.get("persona")
        if not isinstance(persona, str) or not persona:
            raise BadMessageError(f"a {kind} needs a 'persona': pick a caller from the list")
        if kind == "reveal":
            return Reveal(persona=persona)
        return StartCall(persona=persona, at=_instant(raw.get("at"), raw.get("zone")))
    if kind == "key":
        key = raw.get("key")
        if not isinstance(key, str) or key not in KEYS:
            raise BadMessageError(f"not a phone key: {key!r} (the keys are 0-9, * and #)")
        return KeyPress(key=key)
    if kind in CONTROLS:
        return Control(action=kind)
    expected = ", ".join(("call", "key", *CONTROLS, "reveal", "reset", "open"))
    raise BadMessageError(f"unknown message type {kind!r}; expected one of {expected}")
