"""R2-R6, R8 and R10 as pure functions: every grant and every denial reason, each naming its rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

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
    Severity,
    Standing,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)
from ivr.auth.rules import (
    DIGITS,
    PLAN_RANK,
    authorize_code,
    authorize_key,
    authorize_ticket,
    check_hours,
    check_length,
    read_back,
    shown,
)
from ivr.zones import spoken

EASTERN = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
TODAY = date(2026, 11, 17)
CODE = "1234500001"
KEY = "40000001"
TICKET_ID = "1000001"
SIX_PRODUCTS = (
    "Parallels Plesk Panel",
    "Parallels Plesk Sitebuilder",
    "Parallels Plesk Expand",
    "Parallels Virtuozzo Containers",
    "Parallels Business Automation Standard",
    "Parallels Plesk Billing",
)


def make_contract(**changes) -> Contract:
    """A standard, limited, active contract with phone support; ``changes`` override its fields."""
    base = Contract(
        id="K-1",
        customer_id="C-1",
        plan=Plan.STANDARD,
        channels=frozenset(Channel),
        incidents=5,
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 12, 31),
        hours=SupportHours(tz=EASTERN),
    )
    return replace(base, **changes)


def make_ticket(**changes) -> Ticket:
    """An open technical ticket under ``K-1``; ``changes`` override its fields."""
    base = Ticket(
        id=TICKET_ID,
        customer_id="C-1",
        contract_id="K-1",
        status=TicketStatus.OPEN,
        purpose=Purpose.TECHNICAL,
    )
    return replace(base, **changes)


#: Contract conditions every method shares (R2 b, R4 b, R5 b): (contract changes, balance, reason).
UNUSABLE = [
    pytest.param({"valid_until": date(2026, 11, 16)}, 5, Reason.CONTRACT_EXPIRED, id="expired-yesterday"),
    pytest.param({"valid_from": date(2026, 11, 18)}, 5, Reason.CONTRACT_NOT_STARTED, id="starts-tomorrow"),
    pytest.param(
        {"channels": frozenset({Channel.CHAT, Channel.EMAIL})},
        5,
        Reason.NO_PHONE_SUPPORT,
        id="no-phone-channel",
    ),
    pytest.param(
        {"plan": Plan.COMPLIMENTARY, "channels": frozenset({Channel.CHAT, Channel.EMAIL}), "incidents": None},
        None,
        Reason.NO_PHONE_SUPPORT,
        id="complimentary",
    ),
    pytest.param({}, 0, Reason.NO_INCIDENTS, id="balance-0"),
    pytest.param({}, -1, Reason.NO_INCIDENTS, id="balance-negative"),
]

#: Validity edges: both ends of the window are inside it.
USABLE = [
    pytest.param({}, 5, id="plain"),
    pytest.param({}, 1, id="last-incident"),
    pytest.param({"incidents": None}, None, id="unlimited"),
    pytest.param({"valid_from": TODAY}, 5, id="first-day"),
    pytest.param({"valid_until": TODAY}, 5, id="last-day"),
    pytest.param({"plan": Plan.PREMIER, "hours": SupportHours(tz=EASTERN, always=True)}, 5, id="premier"),
]


def ticket_decision(  # noqa: PLR0913 - the facts R2 reads, each overridable by name
    ticket,
    contract,
    balance,
    *,
    owner_kind=CallerKind.CONSUMER,
    purpose=Purpose.TECHNICAL,
    others=(),
) -> Decision:
    """``authorize_ticket`` for the ticket ID everybody enters here; no ticket or contract is "not found"."""
    found = None
    if ticket is not None and contract is not None:
        found = OwnedTicket(
            ticket=ticket,
            owner_kind=owner_kind,
            own=Standing(contract=contract, balance=balance),
            others=tuple(others),
        )
    return authorize_ticket(TICKET_ID, found, purpose=purpose, today=TODAY)


def other(contract_id, balance=5, **changes) -> Standing:
    """Another contract of the ticket's owner (``C-1``), usable unless ``changes`` say otherwise."""
    return Standing(contract=make_contract(id=contract_id, **changes), balance=balance)


EXPIRED = {"valid_until": date(2025, 12, 31)}
PREMIER = {"plan": Plan.PREMIER, "incidents": None, "hours": SupportHours(tz=EASTERN, always=True)}


class TestAuthorizeTicket:
    """R2, with R3 (business licensing) and R6 (per-incident tickets)."""

    @pytest.mark.parametrize(
        ("ticket", "contract"),
        [
            pytest.param(None, None, id="no-ticket"),
            pytest.param(None, make_contract(), id="no-ticket-with-contract"),
            pytest.param(make_ticket(), None, id="ticket-without-contract"),
        ],
    )
    @pytest.mark.parametrize("owner_kind", list(CallerKind))
    def test_unknown_ticket_is_denied_under_r2(self, ticket, contract, owner_kind):
        """A ticket that is not found (or has no contract) is an R2 ``unknown_ticket`` denial, for anyone."""
        decision = ticket_decision(ticket, contract, 5, owner_kind=owner_kind, purpose=Purpose.LICENSING)
        assert not decision.granted
        assert decision.rule is Rule.R2
        assert decision.reason is Reason.UNKNOWN_TICKET
        assert TICKET_ID in decision.detail
        assert not decision.deduct

    @pytest.mark.parametrize(
        ("owner_kind", "purpose"),
        [(k, p) for k in CallerKind for p in Purpose],
    )
    @pytest.mark.parametrize("plan", [Plan.STANDARD, Plan.PER_INCIDENT, Plan.PREMIER])
    def test_closed_ticket_is_denied_for_every_caller(self, owner_kind, purpose, plan):
        """A closed ticket can never be reopened: R2 ``ticket_closed``, even for R3 or R6 callers or a renewal."""
        decision = ticket_decision(
            make_ticket(status=TicketStatus.CLOSED),
            make_contract(plan=plan),
            5,
            owner_kind=owner_kind,
            purpose=purpose,
            others=[other("K-2", **PREMIER)],
        )
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R2, Reason.TICKET_CLOSED)
        assert decision.ticket_id == TICKET_ID
        assert decision.contract_id == "K-1"
        assert decision.customer_id == "C-1"

    @pytest.mark.parametrize("status", [TicketStatus.OPEN, TicketStatus.PENDING])
    @pytest.mark.parametrize(("changes", "balance"), USABLE)
    @pytest.mark.parametrize("owner_kind", list(CallerKind))
    def test_open_ticket_on_usable_contract_is_granted_without_deduction(self, status, changes, balance, owner_kind):
        """An open or pending ticket on an active phone contract with incidents is joined: R2, no deduction."""
        decision = ticket_decision(make_ticket(status=status), make_contract(**changes), balance, owner_kind=owner_kind)
        assert decision.granted
        assert decision.rule is Rule.R2
        assert decision.reason is None
        assert decision.deduct is False
        assert (decision.ticket_id, decision.contract_id, decision.customer_id) == (TICKET_ID, "K-1", "C-1")

    @pytest.mark.parametrize(("changes", "balance", "reason"), UNUSABLE)
    @pytest.mark.parametrize(
        ("owner_kind", "purpose"),
        [
            pytest.param(CallerKind.CONSUMER, Purpose.TECHNICAL, id="consumer-technical"),
            pytest.param(CallerKind.CONSUMER, Purpose.LICENSING, id="consumer-licensing-no-r3"),
            pytest.param(CallerKind.BUSINESS, Purpose.TECHNICAL, id="business-technical"),
        ],
    )
    def test_unusable_contract_denies_the_ticket_under_r2(self, changes, balance, reason, owner_kind, purpose):
        """R2 b: an expired, not-started, phoneless or empty contract, and nothing else, denies the ticket (no R3)."""
        decision = ticket_decision(
            make_ticket(), make_contract(**changes), balance, owner_kind=owner_kind, purpose=purpose
        )
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R2, reason)
        assert decision.ticket_id == TICKET_ID
        assert decision.contract_id == "K-1"
        assert not decision.deduct

    @pytest.mark.parametrize(("changes", "balance", "_reason"), UNUSABLE)
    @pytest.mark.parametrize("status", [TicketStatus.OPEN, TicketStatus.PENDING])
    def test_business_licensing_call_skips_the_contract_check_under_r3(self, changes, balance, _reason, status):
        """R3: a licensing call on a business owner's ticket passes whatever the contract's state, deducting nothing."""
        decision = ticket_decision(
            make_ticket(status=status, purpose=Purpose.LICENSING),
            make_contract(**changes),
            balance,
            owner_kind=CallerKind.BUSINESS,
            purpose=Purpose.LICENSING,
        )
        assert decision.granted
        assert decision.rule is Rule.R3
        assert decision.deduct is False
        assert (decision.ticket_id, decision.contract_id) == (TICKET_ID, "K-1")

    def test_r3_looks_at_the_call_purpose_not_the_ticket_purpose(self):
        """R3 is about what the call is for: a business licensing call on a technical ticket still skips (b)."""
        decision = ticket_decision(
            make_ticket(purpose=Purpose.TECHNICAL),
            make_contract(valid_until=date(2025, 12, 31)),
            3,
            owner_kind=CallerKind.BUSINESS,
            purpose=Purpose.LICENSING,
        )
        assert (decision.granted, decision.rule) == (True, Rule.R3)

    def test_r3_is_for_business_owners_only(self):
        """A consumer's licensing ticket gets no R3 exception, whatever key the caller pressed: R2 b applies."""
        decision = ticket_decision(
            make_ticket(purpose=Purpose.LICENSING),
            make_contract(**EXPIRED),
            3,
            owner_kind=CallerKind.CONSUMER,
            purpose=Purpose.LICENSING,
        )
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R2, Reason.CONTRACT_EXPIRED)

    @pytest.mark.parametrize("balance", [0, 1, None])
    @pytest.mark.parametrize("owner_kind", list(CallerKind))
    def test_per_incident_ticket_passes_with_balance_zero_under_r6(self, balance, owner_kind):
        """R6: the per-incident ticket *is* the incident bought; it authorizes with nothing left and deducts nothing."""
        decision = ticket_decision(
            make_ticket(), make_contract(plan=Plan.PER_INCIDENT, incidents=0), balance, owner_kind=owner_kind
        )
        assert decision.granted
        assert decision.rule is Rule.R6
        assert decision.deduct is False

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            pytest.param({"valid_until": date(2026, 11, 16)}, Reason.CONTRACT_EXPIRED, id="expired"),
            pytest.param({"valid_from": date(2026, 11, 18)}, Reason.CONTRACT_NOT_STARTED, id="not-started"),
            pytest.param({"channels": frozenset({Channel.EMAIL})}, Reason.NO_PHONE_SUPPORT, id="no-phone"),
        ],
    )
    def test_per_incident_ticket_still_needs_an_active_phone_contract(self, changes, reason):
        """R6 waives only "incidents available": an expired or phoneless per-incident contract still denies (R2)."""
        contract = make_contract(plan=Plan.PER_INCIDENT, incidents=0, **changes)
        decision = ticket_decision(make_ticket(), contract, 0)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R2, reason)


class TestTicketOwnersContracts:
    """R2 b is about the ticket's owner: its own contract first, else the owner's best qualifying one."""

    @pytest.mark.parametrize(("changes", "balance", "_reason"), UNUSABLE)
    def test_owner_qualifies_through_another_contract(self, changes, balance, _reason):
        """When the ticket's contract fails R2 b, the owner's other qualifying contract authorizes: R2, named."""
        decision = ticket_decision(make_ticket(), make_contract(**changes), balance, others=[other("K-2")])
        assert decision.granted
        assert decision.rule is Rule.R2
        assert (decision.ticket_id, decision.contract_id, decision.customer_id) == (TICKET_ID, "K-2", "C-1")
        assert decision.deduct is False
        assert "K-1" in decision.detail
        assert "K-2" in decision.detail

    def test_a_renewal_is_named_with_why_the_old_contract_failed(self):
        """The grant's detail says why the ticket's contract failed and which contract qualified, with its plan."""
        decision = ticket_decision(make_ticket(), make_contract(**EXPIRED), 5, others=[other("K-2", None, **PREMIER)])
        assert decision.detail == (
            f"ticket {TICKET_ID} is open; contract K-1 expired on 2025-12-31, but its owner C-1 has active "
            "contract K-2 (premier) with phone support and incidents available"
        )

    def test_the_tickets_own_contract_wins_when_it_qualifies(self):
        """A qualifying ticket contract is used even when the owner holds a better plan elsewhere."""
        decision = ticket_decision(make_ticket(), make_contract(), 5, others=[other("K-2", None, **PREMIER)])
        assert (decision.granted, decision.contract_id) == (True, "K-1")

    @pytest.mark.parametrize(
        ("others", "chosen"),
        [
            pytest.param(
                [other("K-PPI", 1, plan=Plan.PER_INCIDENT), other("K-STD"), other("K-PREM", None, **PREMIER)],
                "K-PREM",
                id="premier-first",
            ),
            pytest.param(
                [other("K-PREM", None, **PREMIER), other("K-STD"), other("K-PPI", 1, plan=Plan.PER_INCIDENT)],
                "K-PREM",
                id="order-does-not-matter",
            ),
            pytest.param([other("K-PPI", 1, plan=Plan.PER_INCIDENT), other("K-STD")], "K-STD", id="then-standard"),
            pytest.param([other("K-PPI", 1, plan=Plan.PER_INCIDENT)], "K-PPI", id="then-per-incident"),
            pytest.param([other("K-B"), other("K-A")], "K-A", id="tie-by-id"),
        ],
    )
    def test_the_best_plan_qualifies(self, others, chosen):
        """Among the owner's qualifying contracts: premier, then standard, then per-incident (a tie by ID)."""
        decision = ticket_decision(make_ticket(), make_contract(**EXPIRED), 5, others=others)
        assert (decision.granted, decision.rule, decision.contract_id) == (True, Rule.R2, chosen)

    def test_a_better_plan_that_does_not_qualify_is_passed_over(self):
        """An expired premier contract loses to an active standard one."""
        others = [other("K-PREM", None, **PREMIER, **EXPIRED), other("K-STD")]
        decision = ticket_decision(make_ticket(), make_contract(**EXPIRED), 5, others=others)
        assert decision.contract_id == "K-STD"

    @pytest.mark.parametrize(("changes", "balance", "_reason"), UNUSABLE)
    def test_no_qualifying_contract_denies_with_the_tickets_own_reason(self, changes, balance, _reason):
        """When none of the owner's contracts qualifies, the denial is the ticket's own contract's, naming it."""
        decision = ticket_decision(
            make_ticket(), make_contract(**EXPIRED), 5, others=[other("K-2", balance, **changes)]
        )
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R2, Reason.CONTRACT_EXPIRED)
        assert decision.contract_id == "K-1"

    def test_another_per_incident_contract_needs_its_incident(self):
        """R6's waiver is for the ticket's own per-incident contract: another one with nothing left does not qualify."""
        others = [other("K-PPI", 0, plan=Plan.PER_INCIDENT, incidents=0)]
        decision = ticket_decision(make_ticket(), make_contract(**EXPIRED), 5, others=others)
        assert (decision.granted, decision.reason) == (False, Reason.CONTRACT_EXPIRED)

    def test_owned_ticket_finds_the_contract_a_decision_names(self):
        """``OwnedTicket.contract`` gives the ticket's own or another owner contract by ID, else ``None``."""
        own, renewal = make_contract(), make_contract(id="K-2")
        found = OwnedTicket(
            ticket=make_ticket(),
            owner_kind=CallerKind.CONSUMER,
            own=Standing(contract=own, balance=5),
            others=(Standing(contract=renewal, balance=5),),
        )
        assert (found.contract("K-1"), found.contract("K-2")) == (own, renewal)
        assert found.contract("K-3") is None
        assert found.contract(None) is None

    def test_plan_rank_orders_every_plan(self):
        """Every plan has a rank: premier, standard, per-incident, complimentary."""
        assert sorted(Plan, key=PLAN_RANK.__getitem__) == [
            Plan.PREMIER,
            Plan.STANDARD,
            Plan.PER_INCIDENT,
            Plan.COMPLIMENTARY,
        ]


class TestAuthorizeCode:
    """R4: support codes open a new ticket and deduct when the allowance is limited."""

    def test_unknown_code_is_denied_and_masked(self):
        """A code that is not found is an R4 ``unknown_code`` denial that shows at most its last two digits."""
        decision = authorize_code(CODE, None, None, None, today=TODAY)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R4, Reason.UNKNOWN_CODE)
        assert CODE not in decision.detail
        assert "********01" in decision.detail

    def test_code_whose_contract_is_missing_is_unknown(self):
        """A code record pointing at no contract counts as an unknown code."""
        decision = authorize_code(CODE, SupportCode(code=CODE, contract_id="K-1"), None, 5, today=TODAY)
        assert decision.reason is Reason.UNKNOWN_CODE

    @pytest.mark.parametrize(("changes", "balance"), USABLE)
    def test_usable_contract_grants_under_r4(self, changes, balance):
        """A code on an active phone contract with incidents is granted by R4 for a new ticket."""
        contract = make_contract(**changes)
        decision = authorize_code(CODE, SupportCode(code=CODE, contract_id="K-1"), contract, balance, today=TODAY)
        assert decision.granted
        assert decision.rule is Rule.R4
        assert decision.ticket_id is None
        assert (decision.customer_id, decision.contract_id) == ("C-1", "K-1")
        assert decision.deduct is (not contract.unlimited)
        assert CODE not in decision.detail

    @pytest.mark.parametrize(("incidents", "balance", "deduct"), [(5, 5, True), (1, 1, True), (None, None, False)])
    def test_deducts_only_for_limited_allowances(self, incidents, balance, deduct):
        """One incident is deducted if the allowance is limited; none if it is unlimited."""
        contract = make_contract(incidents=incidents)
        decision = authorize_code(CODE, SupportCode(code=CODE, contract_id="K-1"), contract, balance, today=TODAY)
        assert decision.deduct is deduct

    @pytest.mark.parametrize(("changes", "balance", "reason"), UNUSABLE)
    def test_unusable_contract_denies_under_r4(self, changes, balance, reason):
        """R4 b: every contract condition denies under R4, naming the contract and masking the code."""
        decision = authorize_code(
            CODE,
            SupportCode(code=CODE, contract_id="K-1"),
            make_contract(**changes),
            balance,
            today=TODAY,
        )
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R4, reason)
        assert decision.contract_id == "K-1"
        assert not decision.deduct
        assert CODE not in decision.detail


class TestAuthorizeKey:
    """R5: license keys of the six listed business products."""

    def test_the_six_products_are_exactly_the_listed_ones(self):
        """The eligible products are exactly the six the seed lists."""
        assert frozenset(SIX_PRODUCTS) == BUSINESS_KEY_PRODUCTS

    def test_unknown_key_is_denied_and_masked(self):
        """A key that is not found is an R5 ``unknown_key`` denial showing at most its last two digits."""
        decision = authorize_key(KEY, None, None, None, today=TODAY)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R5, Reason.UNKNOWN_KEY)
        assert KEY not in decision.detail
        assert "******01" in decision.detail

    def test_key_whose_contract_is_missing_is_unknown(self):
        """A key record pointing at no contract counts as an unknown key."""
        key = LicenseKey(key=KEY, product=SIX_PRODUCTS[0], contract_id="K-1")
        assert authorize_key(KEY, key, None, 5, today=TODAY).reason is Reason.UNKNOWN_KEY

    @pytest.mark.parametrize("product", SIX_PRODUCTS)
    @pytest.mark.parametrize(("changes", "balance"), USABLE)
    def test_each_listed_product_is_granted_under_r5(self, product, changes, balance):
        """Each of the six listed products' keys, on a usable contract, is granted by R5 for a new ticket."""
        contract = make_contract(**changes)
        key = LicenseKey(key=KEY, product=product, contract_id="K-1")
        decision = authorize_key(KEY, key, contract, balance, today=TODAY)
        assert decision.granted
        assert decision.rule is Rule.R5
        assert decision.ticket_id is None
        assert decision.deduct is (not contract.unlimited)
        assert KEY not in decision.detail

    @pytest.mark.parametrize(
        "product",
        [
            "Parallels Desktop",
            "Parallels Workstation Extreme",
            "Parallels Remote Application Server",
            "parallels plesk panel",
            "Parallels Plesk Panel ",
            "",
        ],
    )
    def test_other_products_are_not_eligible(self, product):
        """Any other product (including near-misses of a listed name) is an R5 ``product_not_eligible`` denial."""
        key = LicenseKey(key=KEY, product=product, contract_id="K-1")
        decision = authorize_key(KEY, key, make_contract(), 5, today=TODAY)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R5, Reason.PRODUCT_NOT_ELIGIBLE)
        assert decision.contract_id == "K-1"
        assert KEY not in decision.detail

    def test_product_is_checked_before_the_contract(self):
        """An ineligible product on an expired contract is reported as the product, the more useful reason."""
        key = LicenseKey(key=KEY, product="Parallels Desktop", contract_id="K-1")
        decision = authorize_key(
            KEY, key, make_contract(valid_until=date(2020, 1, 1), valid_from=date(2019, 1, 1)), 5, today=TODAY
        )
        assert decision.reason is Reason.PRODUCT_NOT_ELIGIBLE

    @pytest.mark.parametrize(("changes", "balance", "reason"), UNUSABLE)
    def test_unusable_contract_denies_under_r5(self, changes, balance, reason):
        """R5 b: every contract condition denies under R5."""
        key = LicenseKey(key=KEY, product=SIX_PRODUCTS[1], contract_id="K-1")
        decision = authorize_key(KEY, key, make_contract(**changes), balance, today=TODAY)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R5, reason)
        assert not decision.deduct


class TestCheckLength:
    """A wrong length is a no-match naming the method's rule, never a lookup."""

    @pytest.mark.parametrize(
        ("method", "want"), [(Method.TICKET, 7), (Method.SUPPORT_CODE, 10), (Method.LICENSE_KEY, 8)]
    )
    def test_lengths(self, method, want):
        """Ticket IDs are 7 digits, support codes 10, license keys 8."""
        assert DIGITS[method] == want

    @pytest.mark.parametrize(
        ("method", "digits"),
        [(Method.TICKET, "1000001"), (Method.SUPPORT_CODE, "1234500001"), (Method.LICENSE_KEY, "40000001")],
    )
    def test_right_length_passes(self, method, digits):
        """An entry of exactly the method's length in digits passes."""
        assert check_length(method, digits) is None

    @pytest.mark.parametrize(
        ("method", "rule"),
        [(Method.TICKET, Rule.R2), (Method.SUPPORT_CODE, Rule.R4), (Method.LICENSE_KEY, Rule.R5)],
    )
    @pytest.mark.parametrize("delta", [-100, -1, 1, 3])
    def test_wrong_length_is_denied_under_the_methods_rule(self, method, rule, delta):
        """Too short, too long or empty: ``wrong_length`` under R2, R4 or R5, saying how many digits it had."""
        count = max(0, DIGITS[method] + delta)
        digits = "7" * count
        decision = check_length(method, digits)
        assert decision is not None
        assert (decision.granted, decision.rule, decision.reason) == (False, rule, Reason.WRONG_LENGTH)
        assert f"has {count} digits, not {DIGITS[method]}" in decision.detail

    @pytest.mark.parametrize("method", list(Method))
    def test_non_digits_of_the_right_length_are_wrong(self, method):
        """An entry of the right length that is not all digits is a no-match too."""
        decision = check_length(method, "*" * DIGITS[method])
        assert decision is not None
        assert decision.reason is Reason.WRONG_LENGTH

    @pytest.mark.parametrize("method", [Method.SUPPORT_CODE, Method.LICENSE_KEY])
    @pytest.mark.parametrize("digits", ["123450000199", "1234500", "40000001", "1234500001"])
    def test_code_and_key_entries_are_masked_in_the_detail(self, method, digits):
        """A wrong-length code or key entry appears with its last two digits at most."""
        decision = check_length(method, digits)
        if decision is None:
            return
        assert digits not in decision.detail
        assert shown(method, digits) in decision.detail

    def test_wrong_length_ticket_entries_are_masked_too(self):
        """A wrong-length "ticket ID" may be a code typed at the wrong prompt: masked like one."""
        decision = check_length(Method.TICKET, "1234500001")
        assert decision is not None
        assert "1234500001" not in decision.detail
        assert "ticket ********01 has 10 digits, not 7" in decision.detail


def granted_r4() -> Decision:
    """A grant to pass through the hours check."""
    return Decision(granted=True, rule=Rule.R4, customer_id="C-1", contract_id="K-1", deduct=True)


def at(tz, *parts) -> datetime:
    """An aware datetime in ``tz``."""
    return datetime(*parts, tzinfo=tz)


STANDARD_HOURS = SupportHours(tz=EASTERN)
BERLIN_HOURS = SupportHours(tz=BERLIN, opens=time(9), closes=time(17))
WEEKEND_HOURS = SupportHours(tz=EASTERN, weekdays=frozenset({5, 6}), opens=time(10), closes=time(14))


class TestSupportHours:
    """R8's clock: a window on some weekdays in a time zone, or 24x7."""

    @pytest.mark.parametrize(
        ("hours", "now", "is_open"),
        [
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 17, 10), True, id="tuesday-10am"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 17, 8), True, id="opens-at-8-inclusive"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 17, 7, 59, 59), False, id="before-8"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 17, 19, 59, 59), True, id="just-before-20"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 17, 20), False, id="closes-at-20-exclusive"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 16, 9), True, id="monday"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 20, 19), True, id="friday-evening"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 21, 12), False, id="saturday-noon"),
            pytest.param(STANDARD_HOURS, at(EASTERN, 2026, 11, 22, 12), False, id="sunday-noon"),
            # the instant, not the wall clock of the offset given, decides
            pytest.param(STANDARD_HOURS, datetime(2026, 11, 17, 15, 0, tzinfo=UTC), True, id="utc-15-is-10-est"),
            pytest.param(STANDARD_HOURS, datetime(2026, 11, 17, 12, 30, tzinfo=UTC), False, id="utc-1230-is-0730-est"),
            pytest.param(
                STANDARD_HOURS, datetime(2026, 11, 18, 0, 30, tzinfo=UTC), True, id="utc-wed-0030-is-tue-1930"
            ),
            pytest.param(STANDARD_HOURS, datetime(2026, 11, 21, 0, 30, tzinfo=UTC), True, id="utc-sat-is-fri-est"),
            pytest.param(STANDARD_HOURS, datetime(2026, 11, 16, 3, 0, tzinfo=UTC), False, id="utc-mon-is-sun-est"),
            # US DST starts Sunday 2026-03-08: 12:30 UTC is 07:30 EST before and 08:30 EDT after
            pytest.param(STANDARD_HOURS, datetime(2026, 3, 6, 12, 30, tzinfo=UTC), False, id="dst-start-fri-before"),
            pytest.param(STANDARD_HOURS, datetime(2026, 3, 9, 12, 30, tzinfo=UTC), True, id="dst-start-mon-after"),
            # US DST ends Sunday 2026-11-01: 00:30 UTC is 20:30 EDT before and 19:30 EST after
            pytest.param(STANDARD_HOURS, datetime(2026, 10, 30, 0, 30, tzinfo=UTC), False, id="dst-end-thu-before"),
            pytest.param(STANDARD_HOURS, datetime(2026, 11, 3, 0, 30, tzinfo=UTC), True, id="dst-end-mon-after"),
            # custom hours, Berlin: EU DST starts 2026-03-29, three weeks after the US
            pytest.param(BERLIN_HOURS, at(BERLIN, 2026, 11, 17, 9), True, id="berlin-9"),
            pytest.param(BERLIN_HOURS, at(BERLIN, 2026, 11, 17, 17), False, id="berlin-17"),
            pytest.param(BERLIN_HOURS, at(EASTERN, 2026, 11, 17, 10), True, id="berlin-16-from-ny-10"),
            pytest.param(BERLIN_HOURS, at(EASTERN, 2026, 11, 17, 11), False, id="berlin-17-from-ny-11"),
            pytest.param(BERLIN_HOURS, datetime(2026, 3, 20, 8, 30, tzinfo=UTC), True, id="berlin-cet-0930"),
            pytest.param(BERLIN_HOURS, datetime(2026, 3, 30, 7, 30, tzinfo=UTC), True, id="berlin-cest-0930"),
            pytest.param(BERLIN_HOURS, datetime(2026, 3, 20, 7, 30, tzinfo=UTC), False, id="berlin-cet-0830"),
            pytest.param(BERLIN_HOURS, datetime(2026, 3, 30, 15, 30, tzinfo=UTC), False, id="berlin-cest-1730"),
            pytest.param(BERLIN_HOURS, at(BERLIN, 2026, 11, 21, 10), False, id="berlin-saturday"),
            # weekend-only custom days
            pytest.param(WEEKEND_HOURS, at(EASTERN, 2026, 11, 21, 10), True, id="weekend-sat-10"),
            pytest.param(WEEKEND_HOURS, at(EASTERN, 2026, 11, 22, 13, 59), True, id="weekend-sun-1359"),
            pytest.param(WEEKEND_HOURS, at(EASTERN, 2026, 11, 20, 12), False, id="weekend-fri"),
            # 24x7
            pytest.param(
                SupportHours(tz=EASTERN, always=True), at(EASTERN, 2026, 11, 22, 3), True, id="always-sun-3am"
            ),
        ],
    )
    def test_is_open(self, hours, now, is_open):
        """Open exactly on the listed weekdays from ``opens`` (inclusive) to ``closes`` (exclusive), local time."""
        assert hours.is_open(now) is is_open

    @pytest.mark.parametrize(
        ("hours", "text"),
        [
            (STANDARD_HOURS, "Monday to Friday, 08:00 to 20:00 US Eastern time"),
            (BERLIN_HOURS, "Monday to Friday, 09:00 to 17:00 Central European time"),
            (WEEKEND_HOURS, "Saturday to Sunday, 10:00 to 14:00 US Eastern time"),
            (
                SupportHours(tz=EASTERN, weekdays=frozenset({0, 2})),
                "Monday, Wednesday, 08:00 to 20:00 US Eastern time",
            ),
            (SupportHours(tz=EASTERN, weekdays=frozenset({3})), "Thursday, 08:00 to 20:00 US Eastern time"),
            (SupportHours(tz=EASTERN, always=True), "24 hours a day, 7 days a week"),
        ],
    )
    def test_describe(self, hours, text):
        """The hours as the caller hears them."""
        assert hours.describe() == text


class TestCheckHours:
    """R8: an authorized call outside its contract's hours makes no ticket."""

    @pytest.mark.parametrize(
        "now",
        [at(EASTERN, 2026, 11, 17, 10), datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5)))],
    )
    def test_inside_hours_keeps_the_grant(self, now):
        """Inside the hours the grant passes through unchanged."""
        granted = granted_r4()
        assert check_hours(granted, make_contract(), now) is granted

    @pytest.mark.parametrize(
        ("contract", "now"),
        [
            pytest.param(make_contract(), at(EASTERN, 2026, 11, 17, 21), id="standard-evening"),
            pytest.param(make_contract(), at(EASTERN, 2026, 11, 21, 10), id="standard-saturday"),
            pytest.param(make_contract(hours=BERLIN_HOURS), at(EASTERN, 2026, 11, 17, 12), id="berlin-18"),
        ],
    )
    def test_outside_hours_is_denied_under_r8_and_tells_the_hours(self, contract, now):
        """Outside the hours: R8 ``outside_hours``, naming the contract and its hours."""
        decision = check_hours(granted_r4(), contract, now)
        assert (decision.granted, decision.rule, decision.reason) == (False, Rule.R8, Reason.OUTSIDE_HOURS)
        assert decision.contract_id == "K-1"
        assert contract.hours.describe() in decision.detail
        assert not decision.deduct

    def test_outside_hours_keeps_the_ticket_of_a_ticket_grant(self):
        """An R2 grant denied by the hours still names the ticket it was for."""
        granted = ticket_decision(make_ticket(), make_contract(), 5)
        decision = check_hours(granted, make_contract(), at(EASTERN, 2026, 11, 22, 10))
        assert decision.ticket_id == TICKET_ID
        assert decision.rule is Rule.R8

    def test_premier_24x7_is_never_outside_hours(self):
        """A 24x7 contract is open at any instant."""
        contract = make_contract(plan=Plan.PREMIER, hours=SupportHours(tz=EASTERN, always=True))
        granted = granted_r4()
        assert check_hours(granted, contract, at(EASTERN, 2026, 11, 22, 3)) is granted


@pytest.mark.parametrize("deduct", [True, False])
def test_a_new_ticket_is_read_back_under_r10_deducting_what_its_grant_said(deduct):
    """R10: the new ticket's decision names it and its owner, and keeps the grant's deduction (R7)."""
    ticket = make_ticket(severity=Severity.A)
    decision = read_back(ticket, replace(granted_r4(), deduct=deduct))
    assert decision == Decision(
        granted=True,
        rule=Rule.R10,
        detail=f"ticket {TICKET_ID} created (severity A), read back to the caller",
        customer_id="C-1",
        contract_id="K-1",
        ticket_id=TICKET_ID,
        deduct=deduct,
    )


@pytest.mark.parametrize("rule", list(Rule))
def test_every_rule_has_a_sentence(rule):
    """Trainers read a rule's sentence beside each branch: every rule has a non-empty one."""
    assert rule.sentence.strip()


def test_deny_names_rule_reason_and_facts():
    """``Decision.deny`` builds a denial carrying its rule, reason, detail and facts."""
    decision = Decision.deny(Rule.R4, Reason.NO_INCIDENTS, "why", contract_id="K-1", customer_id="C-1")
    assert decision == Decision(
        granted=False,
        rule=Rule.R4,
        reason=Reason.NO_INCIDENTS,
        detail="why",
        contract_id="K-1",
        customer_id="C-1",
    )


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("America/New_York", "US Eastern time"),
        ("Europe/Berlin", "Central European time"),
        ("Asia/Ho_Chi_Minh", "Ho Chi Minh time"),
    ],
)
def test_zones_are_spoken_by_name_not_by_iana_key(zone, said):
    """A prompt says "US Eastern time", never "America/New_York"; a zone not listed is said as its city."""
    assert spoken(ZoneInfo(zone)) == said
