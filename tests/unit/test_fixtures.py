"""Fixture worlds: the default one loads as documented, and every mistake names its file, line and entry."""

from __future__ import annotations

from datetime import time

import pytest

from ivr.auth.model import Channel, Plan, TicketStatus
from ivr.directory.fixtures import load_world
from ivr.yamlsrc import SourceError

HEAD = "customers:\n  - {id: C-A, name: A, kind: consumer}\n  - {id: B-A, name: B, kind: business}\ncontracts:\n"
CONTRACT = (
    "  - {id: K-X, customer: C-A, plan: standard, incidents: 1, valid_from: 2026-01-01, valid_until: 2027-01-01}\n"
)


def test_the_default_world_loads(world):
    """The shipped world has its customers, contracts, codes, keys and tickets, typed."""
    assert len(world.customers) == 14
    assert len(world.contracts) == 16
    assert len(world.support_codes) == 9
    assert len(world.license_keys) == 7
    assert len(world.tickets) == 13
    assert world.contracts["K-ACME-PREM"].unlimited
    assert world.contracts["K-ACME-PREM"].hours.always
    assert Channel.PHONE not in world.contracts["K-CARA-COMP"].channels
    assert Channel.PHONE not in world.contracts["K-UMBRELLA-WEB"].channels
    assert world.contracts["K-BEN-PPI"].plan is Plan.PER_INCIDENT
    assert world.tickets["1000002"].status is TicketStatus.CLOSED
    assert world.tickets["1000003"].customer_id == "C-BEN"
    wayne = world.contracts["K-WAYNE-EU"].hours
    assert (wayne.tz.key, wayne.opens, wayne.closes) == ("Europe/Berlin", time(9), time(17))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            HEAD + "  - {id: K-X, customer: C-NOPE, plan: standard, incidents: 1, valid_from: 2026-01-01, "
            "valid_until: 2027-01-01}\n",
            5,
            "contracts[0] (K-X): 'customer' names 'C-NOPE', which is not defined",
            id="unknown-customer",
        ),
        pytest.param(
            HEAD + CONTRACT + 'support_codes:\n  - {code: "123456789", contract: K-X}\n',
            7,
            "support_codes[0]: 'code' must be exactly 10 digits",
            id="nine-digit-code",
        ),
        pytest.param(
            HEAD + CONTRACT + 'license_keys:\n  - {key: "1234567", product: P, contract: K-X}\n',
            7,
            "license_keys[0]: 'key' must be exactly 8 digits",
            id="seven-digit-key",
        ),
        pytest.param(
            HEAD + CONTRACT + 'tickets:\n  - {id: "12345678", contract: K-X, status: open}\n',
            7,
            "tickets[0] (12345678): 'id' must be exactly 7 digits",
            id="eight-digit-ticket",
        ),
        pytest.param(
            HEAD + CONTRACT + 'tickets:\n  - {id: "1234567", contract: K-X, status: reopened}\n',
            7,
            "tickets[0] (1234567): 'status' is 'reopened'; expected one of open, pending, closed",
            id="bad-status",
        ),
        pytest.param(
            HEAD + CONTRACT.replace("standard", "gold"),
            5,
            "contracts[0] (K-X): 'plan' is 'gold'",
            id="bad-plan",
        ),
        pytest.param(
            HEAD + CONTRACT.replace("incidents: 1", "incidents: -1"),
            5,
            "contracts[0] (K-X): 'incidents' must be a whole number from 0 to 1,000,000,000 or 'unlimited'",
            id="negative-incidents",
        ),
        pytest.param(
            HEAD + CONTRACT.replace("2027-01-01", "2025-01-01"),
            5,
            "contracts[0] (K-X): 'valid_until' is before 'valid_from'",
            id="window-backwards",
        ),
        pytest.param(
            HEAD + CONTRACT + CONTRACT,
            6,
            "contracts[1] (K-X): duplicate id 'K-X' (first at entry 0)",
            id="duplicate",
        ),
        pytest.param(
            HEAD + CONTRACT.replace("}", ", hours: {tz: Mars/Olympus}}"),
            5,
            "contracts[0] (K-X): bad 'hours'",
            id="bad-tz",
        ),
        pytest.param(HEAD + CONTRACT + "gadgets: []\n", 6, "unknown section 'gadgets'", id="unknown-section"),
        pytest.param(
            "customers:\n  - {id: C-A, name: A, kind: robot}\n",
            2,
            "customers[0] (C-A): 'kind' is 'robot'",
            id="kind",
        ),
        pytest.param("customers: [\n", 2, "invalid YAML", id="bad-yaml"),
    ],
)
def test_a_mistake_names_file_line_and_entry(tmp_path, text, line, message):
    """Every check reports the fixture file, the line and the entry (``section[index] (id)``)."""
    path = tmp_path / "world.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        load_world(path)
    assert caught.value.path == path
    assert caught.value.line == line
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")
