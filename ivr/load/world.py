"""A synthetic world for a load run: seeded, large allowances, and written as a fixture file.

The IVR loads the :class:`~ivr.directory.fixtures.World` directly; the `ivr ledger` process reads
the same world from the fixture file (``--fixture``) for its opening balances, so the two agree
by construction. That file leaves the support codes and license keys out: the ledger needs none,
and a run's work folder then holds no secret whole (each worker makes the world again from the
seed). Every contract is valid for decades, answers 24x7 and has far more incidents than the run
can use: a run measures the system, never a world running dry, and a real-time run gives the same
outcomes at 3 a.m. on a Sunday as on a Tuesday morning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import yaml

from ivr.auth.model import (
    BUSINESS_KEY_PRODUCTS,
    CallerKind,
    Channel,
    Contract,
    Customer,
    LicenseKey,
    Plan,
    Purpose,
    Severity,
    SupportCode,
    SupportHours,
    Ticket,
    TicketStatus,
)
from ivr.directory.fixtures import US_EASTERN, World

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Catalog", "Holding", "synthetic_world", "write_fixture"]

_VALID_FROM: Final = date(2020, 1, 1)
_VALID_UNTIL: Final = date(2099, 12, 31)
#: Fixture ticket IDs live below the IVR's first new ticket (2000001), so a guess never hits one.
_TICKET_RANGE: Final = range(1_000_000, 2_000_000)
_CODE_RANGE: Final = range(1_000_000_000, 10_000_000_000)
_KEY_RANGE: Final = range(10_000_000, 100_000_000)
_BUSINESS_SHARE: Final = 1 / 3
_UNLIMITED_SHARE: Final = 0.25
_OPEN_TICKETS: Final = 2
_CLOSED_TICKETS: Final = 1


@dataclass(frozen=True, slots=True)
class Holding:
    """Something a caller can enter (a code, key or ticket ID) and the kind of its owner."""

    digits: str
    kind: CallerKind


@dataclass(slots=True, kw_only=True)
class Catalog:
    """What the call planner draws from: the world's entries, grouped by use, in a stable order."""

    codes: list[Holding] = field(default_factory=list)
    keys: list[Holding] = field(default_factory=list)
    open_tickets: list[Holding] = field(default_factory=list)
    closed_tickets: list[Holding] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)  # every code, key and ticket ID, to guess around

    @classmethod
    def of(cls, world: World) -> Catalog:
        """Group ``world``'s entries for the planner."""
        kind_of = {c.id: world.customers[c.customer_id].kind for c in world.contracts.values()}
        catalog = cls()
        catalog.codes = [Holding(c.code, kind_of[c.contract_id]) for c in world.support_codes.values()]
        catalog.keys = [Holding(k.key, kind_of[k.contract_id]) for k in world.license_keys.values()]
        for ticket in world.tickets.values():
            holding = Holding(ticket.id, kind_of[ticket.contract_id])
            closed = ticket.status is TicketStatus.CLOSED
            (catalog.closed_tickets if closed else catalog.open_tickets).append(holding)
        catalog.taken = {*world.support_codes, *world.license_keys, *world.tickets}
        return catalog


def synthetic_world(*, seed: int, customers: int = 300, incidents: int = 10_000_000) -> World:
    """``customers`` customers (a third businesses), one contract each, codes, keys and tickets.

    Three contracts in four have ``incidents`` incidents (a deduction per new ticket), the rest are
    unlimited premier contracts (no deduction). Every customer has a support code and two open
    tickets and one closed; every business a license key of one of the six listed products.
    """
    rng = random.Random(f"ivr-load-world:{seed}")  # noqa: S311 - reproducible, not secret
    world = World()
    products = sorted(BUSINESS_KEY_PRODUCTS)
    ticket_ids = iter(rng.sample(_TICKET_RANGE, customers * (_OPEN_TICKETS + _CLOSED_TICKETS)))
    codes = iter(rng.sample(_CODE_RANGE, customers))
    keys = iter(rng.sample(_KEY_RANGE, customers))
    hours = SupportHours(tz=US_EASTERN, always=True)
    for i in range(customers):
        business = rng.random() < _BUSINESS_SHARE
        kind = CallerKind.BUSINESS if business else CallerKind.CONSUMER
        customer_id = f"{'B' if business else 'C'}-{i:06d}"
        world.customers[customer_id] = Customer(id=customer_id, name=f"Load customer {i}", kind=kind)
        unlimited = rng.random() < _UNLIMITED_SHARE
        contract = Contract(
            id=f"K-{i:06d}",
            customer_id=customer_id,
            plan=Plan.PREMIER if unlimited else Plan.STANDARD,
            channels=frozenset(Channel),
            incidents=None if unlimited else incidents,
            valid_from=_VALID_FROM,
            valid_until=_VALID_UNTIL,
            hours=hours,
        )
        world.contracts[contract.id] = contract
        code = str(next(codes))
        world.support_codes[code] = SupportCode(code=code, contract_id=contract.id)
        if business:
            key = str(next(keys))
            world.license_keys[key] = LicenseKey(key=key, product=rng.choice(products), contract_id=contract.id)
        for n in range(_OPEN_TICKETS + _CLOSED_TICKETS):
            ticket_id = str(next(ticket_ids))
            world.tickets[ticket_id] = Ticket(
                id=ticket_id,
                customer_id=customer_id,
                contract_id=contract.id,
                status=TicketStatus.OPEN if n < _OPEN_TICKETS else TicketStatus.CLOSED,
                purpose=rng.choice(list(Purpose)),
                severity=rng.choice(list(Severity)),
            )
    return world


def _contract_entry(contract: Contract) -> dict[str, Any]:
    return {
        "id": contract.id,
        "customer": contract.customer_id,
        "plan": contract.plan.value,
        "incidents": "unlimited" if contract.incidents is None else contract.incidents,
        "valid_from": contract.valid_from,
        "valid_until": contract.valid_until,
        "hours": "24x7" if contract.hours.always else "business",
    }


def write_fixture(world: World, path: Path) -> None:
    """Write ``world`` in the fixture format (docs/scenarios.md), for `ivr ledger --fixture`: no codes or keys."""
    doc = {
        "customers": [
            {"id": c.id, "name": c.name, "kind": c.kind.value, "caller_numbers": list(c.caller_numbers)}
            for c in world.customers.values()
        ],
        "contracts": [_contract_entry(c) for c in world.contracts.values()],
        "tickets": [
            {
                "id": t.id,
                "contract": t.contract_id,
                "status": t.status.value,
                "purpose": t.purpose.value,
                "severity": t.severity.value,
            }
            for t in world.tickets.values()
        ],
    }
    header = "# A synthetic world written by `ivr load` (ivr.load.world): seeded, large allowances, 24x7.\n"
    body = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, width=200)
    path.write_text(header + body, encoding="utf-8")
