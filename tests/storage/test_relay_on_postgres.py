"""`ivr relay --store postgresql://...`: a relay process publishes an IVR's outbox from PostgreSQL, in order, once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from ivr.bus.broker import EmbeddedBroker, find_mosquitto
from ivr.directory.postgres import PostgresDirectory
from tests.pgserver import fresh_schema
from tests.storage.test_directory_contract import event

REPO = Path(__file__).resolve().parents[2]


async def test_a_relay_process_publishes_the_outbox_in_order_and_marks_it_sent(postgres_url, world):
    """Twenty events written by a directory: a real `ivr relay` publishes each once, in order, and marks them sent."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh installs it")
    schema = fresh_schema()
    directory = await PostgresDirectory.open(postgres_url, schema=schema)
    events = [event(f"call-{n:02d}") for n in range(20)]
    root = f"ivr-test/{schema}"
    try:
        await directory.load(world)
        for e in events:
            await directory.add_events([e])
        async with (
            EmbeddedBroker() as broker,
            aiomqtt.Client(broker.config.host, broker.config.port, identifier=f"watch-{schema}") as watcher,
        ):
            await watcher.subscribe(f"{root}/#", qos=1)
            url = f"mqtt://{broker.config.host}:{broker.config.port}"
            relay = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ivr", "relay", "--store", f"{postgres_url}?search_path={schema}",
                "--broker", url, "--root", root, "--instance", f"relay-{schema}",
                cwd=REPO, env={k: v for k, v in os.environ.items() if k != "IVR_STORE"},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            got: list[str] = []
            try:
                async with asyncio.timeout(30):
                    async for message in watcher.messages:
                        if "/status/" not in str(message.topic):
                            got.append(message.payload.decode())
                        if len(got) == len(events):
                            break
                    while await directory.unsent(100):  # marked a moment after the broker's PUBACKs
                        await asyncio.sleep(0.05)
            finally:
                relay.terminate()
                _, err = await relay.communicate()
        assert relay.returncode == 0, err.decode()[-2000:]
        assert got == [e.to_json() for e in events]
        conn = await asyncpg.connect(postgres_url, server_settings={"search_path": schema})
        try:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
        finally:
            await conn.close()
    finally:
        await directory.close()
