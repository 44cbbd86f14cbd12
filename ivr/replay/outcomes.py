"""Every outcome a rule can give: each rule granted, and each reason it can deny with.

Derived, not listed: the pure rule functions of `ivr.auth` are run over every combination
of the directory's facts that the model's enums allow (ticket status, plan, channels, validity,
balance, caller kind, purpose, product), so a new denial added to a rule shows up in coverage
without anyone editing a list here.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final, NamedTuple
from zoneinfo import ZoneInfo

from ivr.auth import lockout, rules
from ivr.auth.decisions import Decision, Reason, Rule
from ivr.auth.model import (
    BUSINESS_KEY_PRODUCTS,
    CallerKind,
    Channel,
    Contract,
    LicenseKey,
    Method,
    OwnedTicket,
    Plan,
    Purpose,
    Standing,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["GRANTED", "Outcome", "outcome_of", "rule_outcomes"]

#: The result of an outcome that is a grant (the others name their reason).
GRANTED: Final = "granted"

_TODAY: Final = date(2026, 6, 1)
_UTC: Final = ZoneInfo("UTC")
_OPEN: Final = SupportHours(tz=_UTC, always=True)
_CLOSED: Final = SupportHours(tz=_UTC, weekdays=frozenset({6}))  # Sundays only; _TODAY is a Monday


class Outcome(NamedTuple):
    """A rule and what it decided: ``granted`` or a denial's reason."""

    rule: str
    result: str

    @property
    def label(self) -> str:
        """``R2 granted`` or ``R2 denied ticket_closed``."""
        return f"{self.rule} {self.result}" if self.result == GRANTED else f"{self.rule} denied {self.result}"


def outcome_of(decision: Decision) -> Outcome:
    """The outcome a decision reached."""
    return Outcome(str(decision.rule), GRANTED if decision.granted else str(decision.reason))


def _contracts() -> Iterator[Contract]:
    """A contract for every plan, channel set, validity window and balance the rules tell apart."""
    windows = (
        (_TODAY - timedelta(days=30), _TODAY + timedelta(days=30)),  # active
        (_TODAY - timedelta(days=60), _TODAY - timedelta(days=30)),  # expired
        (_TODAY + timedelta(days=30), _TODAY + timedelta(days=60)),  # not started
    )
    channel_sets = (frozenset(Channel), frozenset(Channel) - {Channel.PHONE})
    for plan, channels, (start, end), incidents in itertools.product(Plan, channel_sets, windows, (None, 0, 1)):
        yield Contract(
            id="K",
            customer_id="C",
            plan=plan,
            channels=channels,
            incidents=incidents,
            valid_from=start,
            valid_until=end,
            hours=_OPEN,
        )


def _lookups() -> Iterator[Decision]:
    """R2-R6 over every ticket, code and key case, on every contract."""
    for contract in _contracts():
        balance = contract.incidents
        for status, kind, purpose in itertools.product([None, *TicketStatus], CallerKind, Purpose):
            found = (
                None
                if status is None
                else OwnedTicket(
                    ticket=Ticket(id="1000001", customer_id="C", contract_id="K", status=status, purpose=purpose),
                    owner_kind=kind,
                    own=Standing(contract=contract, balance=balance),
                )
            )
            yield rules.authorize_ticket("1000001", found, purpose=purpose, today=_TODAY)
        for code in (None, SupportCode(code="1234567890", contract_id="K")):
            yield rules.authorize_code("1234567890", code, contract, balance, today=_TODAY)
        for product in (None, min(BUSINESS_KEY_PRODUCTS), "a product not listed"):
            key = None if product is None else LicenseKey(key="12345678", product=product, contract_id="K")
            yield rules.authorize_key("12345678", key, contract, balance, today=_TODAY)


def _checks() -> Iterator[Decision]:
    """Entry lengths (R2, R4, R5) and support hours (R8)."""
    for method in Method:
        wrong = rules.check_length(method, "1")
        if wrong is not None:
            yield wrong
    granted = Decision.grant(Rule.R4, "granted", customer_id="C", contract_id="K")
    now = datetime(_TODAY.year, _TODAY.month, _TODAY.day, 12, tzinfo=UTC)
    for contract in _contracts():
        for hours in (_OPEN, _CLOSED):
            yield rules.check_hours(granted, replace(contract, hours=hours), now)


def _after() -> Iterator[Decision]:
    """What follows a lookup: the lockout's refusal and lock, and a new ticket read back (R10)."""
    now = datetime(_TODAY.year, _TODAY.month, _TODAY.day, 12, tzinfo=UTC)
    yield lockout.refuses("+15550100001", now)
    yield lockout.locks("+15550100001")
    ticket = Ticket(id="1000001", customer_id="C", contract_id="K", status=TicketStatus.OPEN, purpose=Purpose.TECHNICAL)
    yield rules.read_back(ticket, Decision.grant(Rule.R4, "granted", customer_id="C", contract_id="K"))


def rule_outcomes() -> list[Outcome]:
    """Every outcome the rules can reach, ordered by rule (as `Rule` lists them), grants first."""
    found = {outcome_of(d) for d in itertools.chain(_lookups(), _checks(), _after())}
    order = {str(rule): i for i, rule in enumerate(Rule)}
    reasons = {str(reason): i for i, reason in enumerate(Reason)}
    return sorted(found, key=lambda o: (order[o.rule], -1 if o.result == GRANTED else reasons[o.result]))
