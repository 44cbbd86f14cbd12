"""Shared fixtures: the default fixture world, a fresh IVR + ledger per test, and a call runner."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import structlog

from ivr import worlds
from ivr.bootstrap import build_system
from ivr.callers import HANGUP, Press, ScriptedCaller, Silence
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.events import DEFAULT_SCHEMA_BASE, use_schema_base

#: PostgreSQL for the storage tests: postgres_server, postgres_url (tests/pgserver.py); a private
#: RabbitMQ node with its MQTT plugin: rabbitmq (tests/rabbitmq.py).
pytest_plugins = ["tests.pgserver", "tests.rabbitmq"]

REPO = Path(__file__).resolve().parent.parent
#: The packaged default world (ivr/worlds/default.yaml), as `ivr` finds it.
DEFAULT_WORLD_PATH = worlds.packaged(worlds.DEFAULT)
#: A Tuesday at 10:00 US Eastern: inside every contract's business hours.
TUESDAY_10AM = datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


def steps_from(script):
    """Scenario-like shorthand: "12#" presses keys, a number is that many seconds of silence, "hangup" hangs up."""
    out = []
    for step in script:
        if step == "hangup":
            out.append(HANGUP)
        elif isinstance(step, int | float):
            out.append(Silence(float(step)))
        else:
            out.append(Press(step))
    return out


@pytest.fixture(autouse=True)
def _quiet_structlog():
    """Log to nowhere (cheaply) during a test, and undo any configuration a test made (the CLI configures)."""
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars],
        logger_factory=structlog.ReturnLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()


@pytest.fixture
def schema_base():
    """Set the process's schema base (as `ivr` does from IVR_SCHEMA_BASE) for one test; the default after."""
    yield use_schema_base
    use_schema_base(DEFAULT_SCHEMA_BASE)


@pytest.fixture(scope="session")
def default_world_path():
    """The packaged default fixture world, by absolute path."""
    return DEFAULT_WORLD_PATH


@pytest.fixture(scope="session")
def world(default_world_path):
    """The default fixture world, loaded once (it is never mutated)."""
    return load_world(default_world_path)


@pytest.fixture
async def system(world, tmp_path):
    """A fresh IVR and ledger for the default world, with real SQLite files in ``tmp_path``."""
    built = await build_system(world=world, workdir=tmp_path)
    yield built
    await built.close()


@pytest.fixture
def run_call(system):
    """A coroutine function that runs one scripted call through ``system``, then settles the ledger."""

    async def run(script, *, at=TUESDAY_10AM, number="+15550100001", call_id=None):
        clock = VirtualClock(start=at)
        record = await system.engine.run_call(
            ScriptedCaller(steps_from(script), clock=clock),
            clock=clock,
            number=number,
            call_id=call_id,
        )
        await system.settle()
        return record

    return run


@pytest.fixture
def ivr_db(system, tmp_path):
    """Query the IVR's own SQLite file directly: ``ivr_db("SELECT ...", *args)`` gives the rows."""

    def query(sql, *args):
        with contextlib.closing(sqlite3.connect(tmp_path / "ivr.db")) as conn:
            return conn.execute(sql, args).fetchall()

    return query
