"""R2-R6, R8 and R10: may this caller be put through, and does it cost an incident.

Every function here is pure: it takes directory facts (or ``None`` where a lookup found nothing),
the ledger's balance and the date or instant, and returns a :class:`Decision` naming its rule.
No I/O, no clock, no MQTT: a rule is testable in one line, and a change to one shows up in the
unit tests and the replayed scenarios alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    Ticket,
    TicketStatus,
)
from ivr.secrets import mask

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date, datetime

__all__ = [
    "DIGITS",
    "PLAN_RANK",
    "authorize_code",
    "authorize_key",
    "authorize_ticket",
    "check_hours",
    "check_length",
    "read_back",
    "shown",
]

#: How many digits each method takes. Ticket IDs are 7 digits (a fixture-world decision: the
#: seeds give no length); codes are 10 (R4) and keys 8 (R5).
DIGITS: dict[Method, int] = {Method.TICKET: 7, Method.SUPPORT_CODE: 10, Method.LICENSE_KEY: 8}

#: R2 (b)'s order among an owner's qualifying contracts: premier, then standard, then per-incident
#: (complimentary has no phone support, so it never qualifies; it is ranked only to be complete).
PLAN_RANK: dict[Plan, int] = {Plan.PREMIER: 0, Plan.STANDARD: 1, Plan.PER_INCIDENT: 2, Plan.COMPLIMENTARY: 3}

_LENGTH_RULE = {Method.TICKET: Rule.R2, Method.SUPPORT_CODE: Rule.R4, Method.LICENSE_KEY: Rule.R5}


def shown(method: Method, digits: str) -> str:
    """How an entry may be shown anywhere: ticket IDs whole, codes and keys masked."""
    return digits if method is Method.TICKET else mask(digits)


def check_length(method: Method, digits: str) -> Decision | None:
    """A wrong length is a no-match, never a lookup; ``None`` when the length is right."""
    want = DIGITS[method]
    if len(digits) == want and digits.isdigit():
        return None
    # Masked whatever the method: a wrong-length "ticket ID" may be a code typed at the wrong prompt.
    return Decision.deny(
        _LENGTH_RULE[method],
        Reason.WRONG_LENGTH,
        f"{method.replace('_', ' ')} {mask(digits)} has {len(digits)} digits, not {want}",
    )


def _contract_usable(
    contract: Contract,
    balance: int | None,
    today: date,
    rule: Rule,
    *,
    need_incident: bool = True,
) -> Decision | None:
    """The shared contract conditions of R2 b, R4 b and R5 b; ``None`` when they all hold."""
    facts: dict[str, str | None] = {"customer_id": contract.customer_id, "contract_id": contract.id}
    if today > contract.valid_until:
        return Decision.deny(
            rule, Reason.CONTRACT_EXPIRED, f"contract {contract.id} expired on {contract.valid_until}", **facts
        )
    if today < contract.valid_from:
        return Decision.deny(
            rule, Reason.CONTRACT_NOT_STARTED, f"contract {contract.id} starts on {contract.valid_from}", **facts
        )
    if Channel.PHONE not in contract.channels:
        return Decision.deny(
            rule,
            Reason.NO_PHONE_SUPPORT,
            f"contract {contract.id} ({contract.plan}) does not include phone support",
            **facts,
        )
    if need_incident and balance is not None and balance <= 0:
        return Decision.deny(rule, Reason.NO_INCIDENTS, f"contract {contract.id} has no incidents left", **facts)
    return None


def authorize_ticket(entered: str, found: OwnedTicket | None, *, purpose: Purpose, today: date) -> Decision:
    """R2 (with R3 and R6): join an existing ticket; never deducts.

    R2 (b) is about the ticket's owner: the ticket's own contract when it qualifies, otherwise the
    owner's qualifying contract with the best plan. The decision names the contract that
    qualified, whose hours (R8) and priority (R9) then apply.
    """
    if found is None:
        return Decision.deny(Rule.R2, Reason.UNKNOWN_TICKET, f"no ticket {entered}")
    ticket, own = found.ticket, found.own.contract
    facts: dict[str, str | None] = {"customer_id": ticket.customer_id, "contract_id": own.id, "ticket_id": ticket.id}
    if ticket.status is TicketStatus.CLOSED:
        return Decision.deny(
            Rule.R2, Reason.TICKET_CLOSED, f"ticket {ticket.id} is closed and cannot be reopened", **facts
        )
    if found.owner_kind is CallerKind.BUSINESS and purpose is Purpose.LICENSING:
        return Decision.grant(
            Rule.R3,
            f"ticket {ticket.id} is {ticket.status} and its owner {ticket.customer_id} is a business; "
            "a licensing call skips the contract check",
            customer_id=ticket.customer_id,
            contract_id=own.id,
            ticket_id=ticket.id,
        )
    # R6: a per-incident ticket *is* the incident bought; calls about it need no incident left.
    per_incident = own.plan is Plan.PER_INCIDENT
    denial = _contract_usable(own, found.own.balance, today, Rule.R2, need_incident=not per_incident)
    if denial is None:
        return Decision.grant(
            Rule.R6 if per_incident else Rule.R2,
            f"ticket {ticket.id} is {ticket.status} under active contract {own.id}",
            customer_id=ticket.customer_id,
            contract_id=own.id,
            ticket_id=ticket.id,
        )
    other = _best_usable(found.others, today)
    if other is None:
        return Decision.deny(denial.rule, denial.reason or Reason.NO_INCIDENTS, denial.detail, **facts)
    return Decision.grant(
        Rule.R2,
        f"ticket {ticket.id} is {ticket.status}; {denial.detail}, but its owner {ticket.customer_id} "
        f"has active contract {other.id} ({other.plan}) with phone support and incidents available",
        customer_id=ticket.customer_id,
        contract_id=other.id,
        ticket_id=ticket.id,
    )


def _best_usable(standings: Iterable[Standing], today: date) -> Contract | None:
    """The qualifying contract with the best plan (R2 b), a tie broken by ID so the choice is stable."""
    usable = [s.contract for s in standings if _contract_usable(s.contract, s.balance, today, Rule.R2) is None]
    return min(usable, key=lambda c: (PLAN_RANK[c.plan], c.id), default=None)


def authorize_code(
    entered: str,
    code: SupportCode | None,
    contract: Contract | None,
    balance: int | None,
    *,
    today: date,
) -> Decision:
    """R4: a support code opens a new ticket, deducting one incident if the allowance is limited."""
    if code is None or contract is None:
        return Decision.deny(Rule.R4, Reason.UNKNOWN_CODE, f"no support code {mask(entered)}")
    denial = _contract_usable(contract, balance, today, Rule.R4)
    if denial is not None:
        return denial
    return Decision.grant(
        Rule.R4,
        f"support code {mask(entered)} is on active contract {contract.id} with phone support",
        customer_id=contract.customer_id,
        contract_id=contract.id,
        deduct=not contract.unlimited,
    )


def authorize_key(
    entered: str,
    key: LicenseKey | None,
    contract: Contract | None,
    balance: int | None,
    *,
    today: date,
) -> Decision:
    """R5: a license key of one of the six listed business products opens a new ticket."""
    if key is None or contract is None:
        return Decision.deny(Rule.R5, Reason.UNKNOWN_KEY, f"no license key {mask(entered)}")
    if key.product not in BUSINESS_KEY_PRODUCTS:
        return Decision.deny(
            Rule.R5,
            Reason.PRODUCT_NOT_ELIGIBLE,
            f"license key {mask(entered)} is for {key.product}, not one of the six listed products",
            customer_id=contract.customer_id,
            contract_id=contract.id,
        )
    denial = _contract_usable(contract, balance, today, Rule.R5)
    if denial is not None:
        return denial
    return Decision.grant(
        Rule.R5,
        f"license key {mask(entered)} ({key.product}) is on contract {contract.id} with phone support",
        customer_id=contract.customer_id,
        contract_id=contract.id,
        deduct=not contract.unlimited,
    )


def check_hours(granted: Decision, contract: Contract, now: datetime) -> Decision:
    """R8: an authorized call outside its contract's support hours makes no ticket."""
    if contract.hours.is_open(now):
        return granted
    return Decision.deny(
        Rule.R8,
        Reason.OUTSIDE_HOURS,
        f"contract {contract.id} support hours are {contract.hours.describe()}",
        customer_id=contract.customer_id,
        contract_id=contract.id,
        ticket_id=granted.ticket_id,
    )


def read_back(ticket: Ticket, granted: Decision) -> Decision:
    """R10: the new ticket made under ``granted`` is read back; it deducts what the grant said (R7)."""
    return Decision(
        granted=True,
        rule=Rule.R10,
        detail=f"ticket {ticket.id} created (severity {ticket.severity}), read back to the caller",
        customer_id=ticket.customer_id,
        contract_id=ticket.contract_id,
        ticket_id=ticket.id,
        deduct=granted.deduct,
    )
