"""`ivr ledger --store postgresql://... balances|history|verify` read a ledger kept in PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.ledger.core import DeductionRequest
from ivr.ledger.postgres import PostgresLedgerStore
from tests.pgserver import fresh_schema

NOW = "2026-11-17T15:00:00+00:00"


def request(ticket: str, contract: str) -> DeductionRequest:
    """A deduction request for ``ticket`` on ``contract``."""
    return DeductionRequest(
        source="ivr-1", event_id=f"evt-{ticket}", call_id=f"call-{ticket}", contract_id=contract, ticket_id=ticket
    )


@pytest.fixture
def ledger_url(postgres_url):
    """A ledger in a schema of its own, K-ONE's last incident taken and a second request rejected; its URL."""
    schema = fresh_schema()

    async def fill() -> None:
        store = await PostgresLedgerStore.open(postgres_url, schema=schema)
        try:
            await store.load_opening({"K-ONE": 1, "K-FIVE": 5})
            await store.apply([request("2000001", "K-ONE"), request("2000002", "K-ONE")], source="ledger", now=NOW)
        finally:
            await store.close()

    asyncio.run(fill())
    return f"{postgres_url}?search_path={schema}"


def ivr(*args):
    """Run ``ivr ARGS`` in-process, with no store or broker from the environment."""
    runner = CliRunner(env={"IVR_LEDGER_STORE": None, "IVR_LEDGER_DB": None, "IVR_BROKER": None})
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_balances_history_and_verify_read_the_postgresql_ledger(ledger_url):
    """The balances, a contract's entries and a passing verify, all from the database."""
    balances = ivr("ledger", "--store", ledger_url, "balances", "--json")
    assert balances.exit_code == 0, balances.output
    assert json.loads(balances.stdout) == {
        "K-FIVE": {"opening": 5, "balance": 5, "deducted": 0},
        "K-ONE": {"opening": 1, "balance": 0, "deducted": 1},
    }
    history = ivr("ledger", "--store", ledger_url, "history", "K-ONE", "--json")
    assert [(e["ticket_id"], e["outcome"]) for e in json.loads(history.stdout)] == [
        ("2000001", "deducted"),
        ("2000002", "rejected"),
    ]
    verify = ivr("ledger", "--store", ledger_url, "verify", "--json")
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["deductions"] == 1


def test_verify_fails_on_a_balance_changed_behind_the_ledgers_back(ledger_url):
    """A balance set by hand in the database: verify exits 1 and names the contract."""

    async def tamper() -> None:
        conn = await asyncpg.connect(ledger_url)
        try:
            await conn.execute("UPDATE ledger_contracts SET balance = 4 WHERE id = 'K-FIVE'")
        finally:
            await conn.close()

    asyncio.run(tamper())
    verify = ivr("ledger", "--store", ledger_url, "verify")
    assert verify.exit_code == 1
    assert "MISMATCH K-FIVE: opening 5 - deducted 0 != balance 4" in verify.stdout


def test_a_database_that_does_not_answer_is_a_clear_error(postgres_url):
    """No server on the port named: exit 1 saying PostgreSQL cannot be used, without the password, no traceback."""
    result = ivr("ledger", "--store", "postgresql://postgres:secret@127.0.0.1:1/none", "balances")
    assert result.exit_code == 1
    assert "PostgreSQL at postgresql://postgres:***@127.0.0.1:1/none cannot be used" in result.output
    assert "secret" not in result.output
