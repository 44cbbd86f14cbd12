"""`ivr serve --store postgresql://...`: a page's session world is a schema of its own, dropped when the page goes."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from ivr.bus.broker import find_mosquitto
from ivr.settings import Settings
from ivr.stores import Store
from ivr.web.app import create_app
from tests.conftest import DEFAULT_WORLD_PATH
from tests.storage.test_replay_on_postgres import replay_schemas
from tests.web.conftest import event_of
from tests.web.test_server import CODE_KEYS, finish, press, start


def test_a_console_call_deducts_with_its_world_in_postgresql_and_leaves_no_schema(postgres_url, monkeypatch):
    """A support-code call on the PostgreSQL store: routed, one incident deducted, the world's schema dropped."""
    monkeypatch.delenv("IVR_BROKER", raising=False)
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh installs it")
    app = create_app(fixture=DEFAULT_WORLD_PATH, settings=Settings(store=Store(dsn=postgres_url)))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        start(ws, "anna-code")
        press(ws, CODE_KEYS)
        seen = finish(ws, event_of("ivr.ledger.incident_deducted"))
    ended = next(m for m in seen if m["type"] == "ended")
    assert (ended["outcome"], ended["rule"]) == ("routed", "R4")
    assert ended["deducted"] == {"K-ANNA-STD": 1}
    assert asyncio.run(replay_schemas(postgres_url, prefix="console_")) == []
