"""Fixtures for the storage tests: PostgreSQL comes from tests/pgserver.py; the private broker of tests/integration."""

from __future__ import annotations

from tests.integration.conftest import private_broker  # noqa: F401 - the shared fixture, re-exported here
