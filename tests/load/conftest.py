"""Fixtures for the load generator's tests: a small synthetic world and the private broker of tests/integration."""

from __future__ import annotations

import pytest

from ivr.load.mix import default_mix
from ivr.load.plan import Planner
from ivr.load.world import Catalog, synthetic_world
from tests.integration.conftest import private_broker  # noqa: F401 - the shared fixture, re-exported here


@pytest.fixture(scope="session")
def small_world():
    """A seeded world of 40 customers (never mutated)."""
    return synthetic_world(seed=7, customers=40)


@pytest.fixture
def planner(small_world):
    """Plans from the default mix on the small world, seed 7."""
    return Planner(seed=7, mix=default_mix(), catalog=Catalog.of(small_world))
