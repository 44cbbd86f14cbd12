"""What a rule decides: granted or denied, the reason from a closed list, and the rule that decided.

The telephony team replays calls to see *why* a call went where it did, and the trainer console
shows the rule's sentence beside each branch; so every decision carries both, never a bare bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["R8_NOTICE", "Decision", "Reason", "Rule"]

#: R8's second half alone: a premier call routed after hours hears it, and was *not* refused, so
#: the first half ("no ticket is made") would tell a trainee the opposite of what happened.
R8_NOTICE = "Premier routed outside weekday office hours hears that support is in English only."


class Rule(StrEnum):
    """The rules of `shared/domain.md`: R1-R11 and the input-handling decisions."""

    R1 = "R1"
    R2 = "R2"
    R3 = "R3"
    R4 = "R4"
    R5 = "R5"
    R6 = "R6"
    R7 = "R7"
    R8 = "R8"
    R9 = "R9"
    R10 = "R10"
    R11 = "R11"
    INPUT = "input"
    ATTEMPTS = "attempts"
    LOCKOUT = "lockout"
    HANGUP = "hangup"

    @property
    def sentence(self) -> str:
        """The rule in one sentence, as `domain.md` states it."""
        return _SENTENCES[self]


_SENTENCES: dict[Rule, str] = {
    Rule.R1: "A call for the online sales team needs no authorization and never deducts an incident.",
    Rule.R2: (
        "Ticket ID: allowed when the ticket exists and is not closed, and its owner has an active contract "
        "with phone support and incidents available (the ticket's own, else the owner's best plan, whose hours "
        "and priority apply); it never deducts an incident."
    ),
    Rule.R3: "A licensing call on a ticket whose owner is a business skips R2's contract condition.",
    Rule.R4: (
        "Support code: exactly 10 digits, exists, and its contract is active, includes phone support "
        "and has incidents available; a new ticket is created and one incident deducted if limited."
    ),
    Rule.R5: (
        "License key (business only): exactly 8 digits, exists, belongs to one of the six listed "
        "business products, and its contract is active, includes phone support and has incidents available."
    ),
    Rule.R6: (
        "A per-incident purchase creates its ticket; every call about it authorizes by that ticket "
        "ID, as many calls as needed, with no further deduction."
    ),
    Rule.R7: (
        "An incident is deducted once per ticket created under a limited contract, and a balance never goes below zero."
    ),
    Rule.R8: (
        "A support call authorized outside its contract's hours is told the hours and offered other channels; "
        f"no ticket is made. {R8_NOTICE}"
    ),
    Rule.R9: (
        "A new ticket asks for a severity, A to D; routing priority rises with severity and with the premier plan."
    ),
    Rule.R10: "A new ticket's ID is read back to the caller, who quotes it on later calls.",
    Rule.R11: ("A caller who cannot be authorized is offered the web form, chat or self-service before the call ends."),
    Rule.INPUT: (
        "No input for 5 s or a key not accepted replays the prompt; the third failure in a row goes to the "
        "fallback, and any accepted input, * included, starts the count over."
    ),
    Rule.ATTEMPTS: "A caller gets 3 authorization attempts per call; the third failure goes to the fallback.",
    Rule.LOCKOUT: (
        "5 failed authorizations from one number within 15 minutes lock it out of authorization for 15 minutes; "
        "when the fifth is also the call's third attempt, the lockout is what ends the call."
    ),
    Rule.HANGUP: "A hang-up ends the call where it stands, leaving nothing half-done.",
}


class Reason(StrEnum):
    """Why a call was denied or sent to the fallback: the closed list the scenarios assert on."""

    UNKNOWN_TICKET = "unknown_ticket"
    TICKET_CLOSED = "ticket_closed"
    UNKNOWN_CODE = "unknown_code"
    UNKNOWN_KEY = "unknown_key"
    WRONG_LENGTH = "wrong_length"
    CONTRACT_EXPIRED = "contract_expired"
    CONTRACT_NOT_STARTED = "contract_not_started"
    NO_PHONE_SUPPORT = "no_phone_support"
    NO_INCIDENTS = "no_incidents"
    PRODUCT_NOT_ELIGIBLE = "product_not_eligible"
    OUTSIDE_HOURS = "outside_hours"
    LOCKED_OUT = "locked_out"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    NO_INPUT = "no_input"
    NO_MATCH = "no_match"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One rule's verdict, with the data that decided it in words a trainer can read aloud."""

    granted: bool
    rule: Rule
    reason: Reason | None = None
    detail: str = ""
    customer_id: str | None = None
    contract_id: str | None = None
    ticket_id: str | None = None
    deduct: bool = False

    @classmethod
    def deny(cls, rule: Rule, reason: Reason, detail: str, **facts: str | None) -> Decision:
        """A denial naming its rule, reason and the facts behind it."""
        return cls(
            granted=False,
            rule=rule,
            reason=reason,
            detail=detail,
            customer_id=facts.get("customer_id"),
            contract_id=facts.get("contract_id"),
            ticket_id=facts.get("ticket_id"),
        )

    @classmethod
    def grant(  # noqa: PLR0913 - the facts a grant names are all keyword-only
        cls,
        rule: Rule,
        detail: str,
        *,
        customer_id: str,
        contract_id: str,
        ticket_id: str | None = None,
        deduct: bool = False,
    ) -> Decision:
        """A grant naming its rule and the facts behind it."""
        return cls(
            granted=True,
            rule=rule,
            detail=detail,
            deduct=deduct,
            customer_id=customer_id,
            contract_id=contract_id,
            ticket_id=ticket_id,
        )
