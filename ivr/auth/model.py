"""The directory's facts: customers, contracts, support codes, license keys and tickets.

Frozen dataclasses, so a decision can never change the facts it was given. The SQLite directory
(`ivr.directory`) builds them; the rules (`ivr.auth.rules`) read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from ivr import zones

__all__ = [
    "BUSINESS_KEY_PRODUCTS",
    "US_EASTERN",
    "CallerKind",
    "Channel",
    "Contract",
    "Customer",
    "LicenseKey",
    "Method",
    "OwnedTicket",
    "Plan",
    "Purpose",
    "Severity",
    "Standing",
    "SupportCode",
    "SupportHours",
    "Ticket",
    "TicketStatus",
]


#: The support centre's time zone: validity days are its calendar days, office hours its clock.
US_EASTERN: Final = ZoneInfo("America/New_York")


class CallerKind(StrEnum):
    """Who is calling: an individual owner of a personal product, or a company."""

    CONSUMER = "consumer"
    BUSINESS = "business"


class Purpose(StrEnum):
    """What a support call (and its ticket) is about."""

    TECHNICAL = "technical"
    LICENSING = "licensing"


class Method(StrEnum):
    """How a caller authorizes."""

    TICKET = "ticket"
    SUPPORT_CODE = "support_code"
    LICENSE_KEY = "license_key"


class Plan(StrEnum):
    """Support plans, from the seed FAQ (000)."""

    STANDARD = "standard"
    PREMIER = "premier"
    PER_INCIDENT = "per-incident"
    COMPLIMENTARY = "complimentary"


class Channel(StrEnum):
    """The channels a contract may include."""

    PHONE = "phone"
    CHAT = "chat"
    EMAIL = "email"


class TicketStatus(StrEnum):
    """A ticket's status; a closed ticket can never be reopened (R2 a)."""

    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class Severity(StrEnum):
    """Severity levels A (business down) to D (minor or questions), as the seed FAQ defines them (R9)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


#: The six business products whose license keys authorize a call (R5).
BUSINESS_KEY_PRODUCTS: frozenset[str] = frozenset(
    {
        "Parallels Plesk Panel",
        "Parallels Plesk Sitebuilder",
        "Parallels Plesk Expand",
        "Parallels Virtuozzo Containers",
        "Parallels Business Automation Standard",
        "Parallels Plesk Billing",
    },
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SupportHours:
    """When phone support answers: every day around the clock, or a daily window on some weekdays."""

    tz: ZoneInfo
    weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    opens: time = time(8, 0)
    closes: time = time(20, 0)
    always: bool = False

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` (any aware datetime) falls within these hours."""
        if self.always:
            return True
        local = now.astimezone(self.tz)
        return local.weekday() in self.weekdays and self.opens <= local.time() < self.closes

    def describe(self) -> str:
        """The hours as the caller hears them."""
        if self.always:
            return "24 hours a day, 7 days a week"
        days = _describe_days(self.weekdays)
        return f"{days}, {self.opens:%H:%M} to {self.closes:%H:%M} {zones.spoken(self.tz)}"


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _describe_days(days: frozenset[int]) -> str:
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f"{_DAY_NAMES[ordered[0]]} to {_DAY_NAMES[ordered[-1]]}"
    return ", ".join(_DAY_NAMES[d] for d in ordered)


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    """A consumer or a business, with the numbers it calls from."""

    id: str
    name: str
    kind: CallerKind
    caller_numbers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Contract:
    """A support option: plan, channels, incident allowance, validity window and support hours.

    ``incidents`` is the opening allowance: ``None`` means unlimited. The balance that decisions
    read is the ledger's, passed alongside, never this field.
    """

    id: str
    customer_id: str
    plan: Plan
    channels: frozenset[Channel]
    incidents: int | None
    valid_from: date
    valid_until: date
    hours: SupportHours

    @property
    def unlimited(self) -> bool:
        """Whether the allowance is unlimited (nothing is ever deducted)."""
        return self.incidents is None

    def is_active(self, today: date) -> bool:
        """Whether ``today`` is inside the validity window, both ends included."""
        return self.valid_from <= today <= self.valid_until


@dataclass(frozen=True, slots=True, kw_only=True)
class SupportCode:
    """A 10-digit support code, tied to one contract."""

    code: str
    contract_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseKey:
    """An 8-digit license key, tied to one business product and one contract."""

    key: str
    product: str
    contract_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    """One problem on one machine: owned by a customer, under a contract."""

    id: str
    customer_id: str
    contract_id: str
    status: TicketStatus
    purpose: Purpose
    severity: Severity = Severity.C


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """A contract with its incidents left as the ledger last reported them (``None``: unlimited)."""

    contract: Contract
    balance: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnedTicket:
    """A ticket as R2 and R3 read it: the contract it was opened under, and its owner's kind and other contracts.

    R2 (b) is about the ticket's owner, not only the ticket's own contract (a customer who renewed
    qualifies through the new one), and R3's "business" is the owner's kind in the directory.
    """

    ticket: Ticket
    owner_kind: CallerKind
    own: Standing
    others: tuple[Standing, ...] = ()

    def contract(self, contract_id: str | None) -> Contract | None:
        """The ticket's own or its owner's contract with this ID, if there is one."""
        for standing in (self.own, *self.others):
            if standing.contract.id == contract_id:
                return standing.contract
        return None
