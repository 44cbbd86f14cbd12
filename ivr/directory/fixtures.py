"""Fixture worlds: the YAML files (packaged ones in `ivr/worlds/`, or a user's own) that fill a directory.

A fixture is hand-written, so every check names the file, the line and the entry
("contracts[3] (K-ACME): unknown plan 'gold'"), and all of them are checked before any is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.auth.model import (
    CallerKind,
    Channel,
    Contract,
    Customer,
    LicenseKey,
    Method,
    Plan,
    Purpose,
    Severity,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)
from ivr.auth.rules import DIGITS
from ivr.yamlsrc import LinedDict, LinedList, SourceError, line_of, load_file

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["US_EASTERN", "Persona", "World", "load_world"]

US_EASTERN: Final = ZoneInfo("America/New_York")
_DAYS: Final = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_PLAN_CHANNELS: Final = {
    Plan.STANDARD: frozenset(Channel),
    Plan.PREMIER: frozenset(Channel),
    Plan.PER_INCIDENT: frozenset(Channel),
    Plan.COMPLIMENTARY: frozenset({Channel.CHAT, Channel.EMAIL}),
}
_SECTIONS: Final = ("customers", "contracts", "support_codes", "license_keys", "tickets", "personas")


@dataclass(frozen=True, slots=True, kw_only=True)
class Persona:
    """A ready-made caller for the trainer console and the load mix: who calls, and what they hold."""

    id: str
    description: str
    caller: str
    customer_id: str | None = None


@dataclass(slots=True, kw_only=True)
class World:
    """Everything a fixture file describes, checked and typed."""

    customers: dict[str, Customer] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)
    support_codes: dict[str, SupportCode] = field(default_factory=dict)
    license_keys: dict[str, LicenseKey] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    personas: dict[str, Persona] = field(default_factory=dict)


class _Entry:
    """One entry of one section, to read fields from with errors that say where."""

    def __init__(self, path: Path, section: str, index: int, raw: Any) -> None:  # noqa: ANN401
        self.path, self.section, self.index, self.raw = path, section, index, raw
        if not isinstance(raw, LinedDict):
            self.fail("must be a mapping")
        self.name = f"{section}[{index}]" + (f" ({raw['id']})" if "id" in raw else "")

    def fail(self, message: str, key: str | None = None) -> None:
        line = line_of(self.raw, key) if isinstance(self.raw, LinedDict) else None
        raise SourceError(self.path, line, f"{getattr(self, 'name', self.section)}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...] = str, *, default: Any = ...) -> Any:  # noqa: ANN401
        if key not in self.raw:
            if default is ...:
                self.fail(f"missing '{key}'")
            return default
        value = self.raw[key]
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"'{key}' must be {want}, not {type(value).__name__} {value!r}", key)
        return value

    def enum(self, key: str, enum: type[Any], default: Any = ...) -> Any:  # noqa: ANN401
        value = self.get(key, str, default=default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum)
            self.fail(f"'{key}' is {value!r}; expected one of {allowed}", key)
        return None  # unreachable: fail raises

    def ref(self, key: str, known: dict[str, Any]) -> str:
        value: str = self.get(key)
        if value not in known:
            self.fail(f"'{key}' names {value!r}, which is not defined", key)
        return value

    def digits(self, key: str, method: Method) -> str:
        value = self.get(key, (str, int))
        text = str(value)
        if not text.isdigit() or len(text) != DIGITS[method]:
            self.fail(f"'{key}' must be exactly {DIGITS[method]} digits (quote it to keep leading zeros)", key)
        return text


def _hours(entry: _Entry, plan: Plan) -> SupportHours:
    raw = entry.raw.get("hours", "24x7" if plan is Plan.PREMIER else "business")
    if raw == "24x7":
        return SupportHours(tz=US_EASTERN, always=True)
    if raw == "business":
        return SupportHours(tz=US_EASTERN)
    if not isinstance(raw, LinedDict):
        entry.fail("'hours' must be 24x7, business, or a mapping of days, from, to, tz", "hours")
    try:
        first, _, last = str(raw.get("days", "mon-fri")).partition("-")
        lo, hi = _DAYS[first], _DAYS[last or first]
        opens = time.fromisoformat(str(raw.get("from", "08:00")))
        closes = time.fromisoformat(str(raw.get("to", "20:00")))
        tz = ZoneInfo(str(raw.get("tz", "America/New_York")))
    except (KeyError, ValueError, ZoneInfoNotFoundError) as exc:
        entry.fail(f"bad 'hours': {exc}", "hours")
        raise  # unreachable: fail raises
    return SupportHours(tz=tz, weekdays=frozenset(range(lo, hi + 1)), opens=opens, closes=closes)


def _incidents(entry: _Entry) -> int | None:
    value = entry.get("incidents", (int, str))
    if value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        entry.fail("'incidents' must be a whole number >= 0 or 'unlimited'", "incidents")
    return int(value)


def _section(path: Path, doc: LinedDict, name: str) -> list[_Entry]:
    if name not in doc:
        return []
    items = doc[name]
    if not isinstance(items, LinedList):
        raise SourceError(path, line_of(doc, name), f"'{name}' must be a list")
    entries = [_Entry(path, name, i, raw) for i, raw in enumerate(items)]
    seen: dict[str, int] = {}
    key = {"support_codes": "code", "license_keys": "key"}.get(name, "id")
    for entry in entries:
        ident = str(entry.get(key, (str, int)))
        if ident in seen:
            entry.fail(f"duplicate {key} {ident!r} (first at entry {seen[ident]})", key)
        seen[ident] = entry.index
    return entries


def load_world(path: Path) -> World:  # noqa: C901 - one pass per section, in dependency order
    """Read and check the fixture file ``path``."""
    doc = load_file(path)
    if not isinstance(doc, LinedDict):
        raise SourceError(path, 1, "a fixture file must be a mapping of sections")
    for key in doc:
        if key not in _SECTIONS:
            raise SourceError(path, line_of(doc, key), f"unknown section '{key}'; expected {', '.join(_SECTIONS)}")
    world = World()
    for e in _section(path, doc, "customers"):
        numbers = e.get("caller_numbers", LinedList, default=LinedList())
        world.customers[e.get("id")] = Customer(
            id=e.get("id"),
            name=e.get("name"),
            kind=e.enum("kind", CallerKind),
            caller_numbers=tuple(str(n) for n in numbers),
        )
    for e in _section(path, doc, "contracts"):
        plan = e.enum("plan", Plan)
        channels = e.get("channels", LinedList, default=None)
        try:
            chosen = frozenset(Channel(c) for c in channels) if channels is not None else _PLAN_CHANNELS[plan]
        except ValueError as exc:
            e.fail(f"bad 'channels': {exc}", "channels")
            raise
        valid_from, valid_until = e.get("valid_from", date), e.get("valid_until", date)
        if valid_until < valid_from:
            e.fail("'valid_until' is before 'valid_from'", "valid_until")
        world.contracts[e.get("id")] = Contract(
            id=e.get("id"),
            customer_id=e.ref("customer", world.customers),
            plan=plan,
            channels=chosen,
            incidents=_incidents(e),
            valid_from=valid_from,
            valid_until=valid_until,
            hours=_hours(e, plan),
        )
    for e in _section(path, doc, "support_codes"):
        code = e.digits("code", Method.SUPPORT_CODE)
        world.support_codes[code] = SupportCode(code=code, contract_id=e.ref("contract", world.contracts))
    for e in _section(path, doc, "license_keys"):
        key = e.digits("key", Method.LICENSE_KEY)
        world.license_keys[key] = LicenseKey(
            key=key,
            product=e.get("product"),
            contract_id=e.ref("contract", world.contracts),
        )
    for e in _section(path, doc, "tickets"):
        ticket_id = e.digits("id", Method.TICKET)
        contract_id = e.ref("contract", world.contracts)
        world.tickets[ticket_id] = Ticket(
            id=ticket_id,
            customer_id=world.contracts[contract_id].customer_id,
            contract_id=contract_id,
            status=e.enum("status", TicketStatus),
            purpose=e.enum("purpose", Purpose, default="technical"),
            severity=e.enum("severity", Severity, default="C"),
        )
    for e in _section(path, doc, "personas"):
        customer = e.ref("customer", world.customers) if "customer" in e.raw else None
        world.personas[e.get("id")] = Persona(
            id=e.get("id"),
            description=e.get("description"),
            caller=str(e.get("caller", (str, int))),
            customer_id=customer,
        )
    return world
