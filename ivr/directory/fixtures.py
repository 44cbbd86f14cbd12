"""Fixture worlds: the YAML files (packaged ones in `ivr/worlds/`, or a user's own) that fill a directory.

A fixture is hand-written, so every check names the file, the line and the entry
("contracts[3] (K-ACME): unknown plan 'gold'"), and all of them are checked before any is used.
Support codes and license keys are secrets even in an error message: they are shown masked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final, NoReturn
from zoneinfo import ZoneInfo, available_timezones

from ivr.auth.model import (
    US_EASTERN,
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
from ivr.phone import InvalidNumberError, normalize
from ivr.secrets import mask
from ivr.yamlsrc import UNQUOTED_DIGITS, LinedDict, LinedList, SourceError, line_of, load_file, shown

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MAX_INCIDENTS", "US_EASTERN", "Persona", "World", "load_world"]

#: The largest allowance a contract may have: far more than any contract sells (the load runs use
#: ten million), and far inside the 64-bit integers the directory and the ledger store.
MAX_INCIDENTS: Final = 1_000_000_000

_DAYS: Final = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_PLAN_CHANNELS: Final = {
    Plan.STANDARD: frozenset(Channel),
    Plan.PREMIER: frozenset(Channel),
    Plan.PER_INCIDENT: frozenset(Channel),
    Plan.COMPLIMENTARY: frozenset({Channel.CHAT, Channel.EMAIL}),
}
#: Each section's fields: any other is a typo that would otherwise be ignored without a word.
_FIELDS: Final = {
    "customers": frozenset({"id", "name", "kind", "caller_numbers"}),
    "contracts": frozenset(
        {"id", "customer", "plan", "channels", "incidents", "valid_from", "valid_until", "hours"},
    ),
    "support_codes": frozenset({"code", "contract"}),
    "license_keys": frozenset({"key", "product", "contract"}),
    "tickets": frozenset({"id", "contract", "status", "purpose", "severity"}),
    "personas": frozenset({"id", "description", "caller", "customer"}),
}
_SECTIONS: Final = tuple(_FIELDS)
_HOURS_DEFAULTS: Final = {"days": "mon-fri", "from": "08:00", "to": "20:00", "tz": "America/New_York"}
#: The field that tells a section's entries apart, and, for digits, what they are.
_IDENTITY: Final = {
    "support_codes": ("code", Method.SUPPORT_CODE),
    "license_keys": ("key", Method.LICENSE_KEY),
    "tickets": ("id", Method.TICKET),
}
#: Fields holding a secret: an error names them but never shows their value whole.
_SECRET_FIELDS: Final = frozenset({"code", "key"})


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
        ident = raw.get("id")
        self.name = f"{section}[{index}]" + (f" ({shown(ident)[1:-1]})" if isinstance(ident, str) else "")
        for key in raw:
            if key not in _FIELDS[section]:
                self.fail(f"unknown field {shown(key)}; expected one of {', '.join(sorted(_FIELDS[section]))}", key)

    def fail(self, message: str, key: str | None = None, *, line: int | None = None) -> NoReturn:
        if line is None and isinstance(self.raw, LinedDict):
            line = line_of(self.raw, key)
        raise SourceError(self.path, line, f"{getattr(self, 'name', self.section)}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...] = str, *, default: Any = ...) -> Any:  # noqa: ANN401
        if key not in self.raw:
            if default is ...:
                self.fail(f"missing '{key}'")
            return default
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            got = type(value).__name__ if key in _SECRET_FIELDS else f"{type(value).__name__} {shown(value)}"
            self.fail(f"'{key}' must be {want}, not {got}", key)
        return value

    def day(self, key: str) -> date:
        """A calendar day (``2026-01-01``); a date-time is refused, not compared with days."""
        value: date = self.get(key, date)
        if isinstance(value, datetime):
            self.fail(f"'{key}' must be a day (2026-01-01), not the date-time {value.isoformat()}", key)
        return value

    def enum(self, key: str, enum: type[Any], default: Any = ...) -> Any:  # noqa: ANN401
        value = self.get(key, str, default=default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum)
            self.fail(f"'{key}' is {shown(value)}; expected one of {allowed}", key)

    def ref(self, key: str, known: dict[str, Any]) -> str:
        value: str = self.get(key)
        if value not in known:
            self.fail(f"'{key}' names {shown(value)}, which is not defined", key)
        return value

    def digits(self, key: str, method: Method) -> str:
        """Exactly the digits a keypad sends: ASCII 0-9 (``isdigit`` also takes full-width and Arabic-Indic ones)."""
        value = self.raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(f"'{key}' must be text: {UNQUOTED_DIGITS}", key)
        text: str = self.get(key, str)
        if not (text.isascii() and text.isdigit()) or len(text) != DIGITS[method]:
            self.fail(f"'{key}' must be exactly {DIGITS[method]} digits 0-9", key)
        return text

    def numbers(self, key: str) -> tuple[str, ...]:
        """The caller numbers of list ``key``, in E.164."""
        items = self.get(key, LinedList, default=LinedList())
        return tuple(self.number(key, item, line_of(items, i)) for i, item in enumerate(items))

    def number(self, key: str, value: object, line: int | None) -> str:
        """A caller number in E.164 (``value``, found at ``line``): written as text, and possible."""
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(f"'{key}' must be text: {UNQUOTED_DIGITS} and the '+'", line=line)
        if not isinstance(value, str):
            self.fail(f"'{key}' must be text, not {type(value).__name__}", line=line)
        try:
            return normalize(value)
        except InvalidNumberError as exc:
            self.fail(f"'{key}': {exc}", line=line)


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA zones known here; a key is checked against them before ``ZoneInfo`` opens a file by it."""
    return frozenset(available_timezones())


def _hours_fields(entry: _Entry, raw: LinedDict) -> dict[str, str]:
    """The fields of an ``hours`` mapping, defaults filled in, each one text."""
    for key in raw:
        if key not in _HOURS_DEFAULTS:
            entry.fail(f"bad 'hours': unknown field {shown(key)}; expected days, from, to, tz", line=line_of(raw, key))
    fields = {key: raw.get(key, default) for key, default in _HOURS_DEFAULTS.items()}
    for key, value in fields.items():
        if not isinstance(value, str):
            entry.fail(f"bad 'hours': '{key}' must be quoted text, not {shown(value)}", line=line_of(raw, key))
    return fields


def _hours(entry: _Entry, plan: Plan) -> SupportHours:
    raw = entry.raw.get("hours", "24x7" if plan is Plan.PREMIER else "business")
    if raw == "24x7":
        return SupportHours(tz=US_EASTERN, always=True)
    if raw == "business":
        return SupportHours(tz=US_EASTERN)
    if not isinstance(raw, LinedDict):
        entry.fail("'hours' must be 24x7, business, or a mapping of days, from, to, tz", "hours")
    fields = _hours_fields(entry, raw)
    first, _, last = fields["days"].partition("-")
    if first not in _DAYS or (last or first) not in _DAYS:
        entry.fail(f"bad 'hours': 'days' is {shown(fields['days'])}; expected a day or a range (mon-fri)", "hours")
    if fields["tz"] not in _zones():
        entry.fail(f"bad 'hours': no time zone {shown(fields['tz'])} (an IANA name, e.g. Europe/Berlin)", "hours")
    try:
        opens, closes = time.fromisoformat(fields["from"]), time.fromisoformat(fields["to"])
    except ValueError:
        entry.fail("bad 'hours': 'from' and 'to' must be times of day, HH:MM", "hours")
    lo, hi = _DAYS[first], _DAYS[last or first]
    return SupportHours(tz=ZoneInfo(fields["tz"]), weekdays=frozenset(range(lo, hi + 1)), opens=opens, closes=closes)


def _incidents(entry: _Entry) -> int | None:
    value = entry.get("incidents", (int, str))
    if value == "unlimited":
        return None
    if not isinstance(value, int) or not 0 <= value <= MAX_INCIDENTS:
        entry.fail(f"'incidents' must be a whole number from 0 to {MAX_INCIDENTS:,} or 'unlimited'", "incidents")
    return value


def _section(path: Path, doc: LinedDict, name: str) -> list[_Entry]:
    if name not in doc:
        return []
    items = doc[name]
    if not isinstance(items, LinedList):
        raise SourceError(path, line_of(doc, name), f"'{name}' must be a list")
    entries = [_Entry(path, name, i, raw) for i, raw in enumerate(items)]
    seen: dict[str, int] = {}
    key, method = _IDENTITY.get(name, ("id", None))
    for entry in entries:
        ident = entry.digits(key, method) if method else entry.get(key)
        if ident in seen:
            written = mask(ident) if key in _SECRET_FIELDS else ident
            entry.fail(f"duplicate {key} {shown(written)} (first at entry {seen[ident]})", key)
        seen[ident] = entry.index
    return entries


def load_world(path: Path) -> World:  # noqa: C901 - one pass per section, in dependency order
    """Read and check the fixture file ``path``."""
    doc = load_file(path)
    if not isinstance(doc, LinedDict):
        raise SourceError(path, 1, "a fixture file must be a mapping of sections")
    for key in doc:
        if key not in _SECTIONS:
            message = f"unknown section {shown(key)}; expected {', '.join(_SECTIONS)}"
            raise SourceError(path, line_of(doc, key), message)
    world = World()
    for e in _section(path, doc, "customers"):
        world.customers[e.get("id")] = Customer(
            id=e.get("id"),
            name=e.get("name"),
            kind=e.enum("kind", CallerKind),
            caller_numbers=e.numbers("caller_numbers"),
        )
    for e in _section(path, doc, "contracts"):
        plan = e.enum("plan", Plan)
        channels = e.get("channels", LinedList, default=None)
        known = {c.value for c in Channel}
        if channels is not None and not all(isinstance(c, str) and c in known for c in channels):
            e.fail(f"bad 'channels': expected a list of {', '.join(sorted(known))}", "channels")
        chosen = frozenset(Channel(c) for c in channels) if channels is not None else _PLAN_CHANNELS[plan]
        valid_from, valid_until = e.day("valid_from"), e.day("valid_until")
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
            caller=e.number("caller", e.get("caller", (str, int)), line_of(e.raw, "caller")),
            customer_id=customer,
        )
    return world
