"""The status topics as an integrator sees them (issue 16): every event's ``source`` has one of that name.

An integrator who sees an event from source S reads ``ivr/v2/status/S`` to learn whether S is up.
Here a console world (its IVR and its own ledger, on the console's one connection) and an IVR with
connections of its own (as `ivr load` and `ivr replay` build it, with its own ledger) publish
events while a subscriber to ``ivr/v2/#`` watches, in the broker's one order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from ivr.bootstrap import CONSOLE, build_system, console_connection
from ivr.bus.base import CLEARED, OFFLINE, ONLINE, status_topic
from ivr.bus.mqtt import MqttBus
from ivr.settings import Settings
from ivr.web.worlds import SessionWorld
from tests.integration.conftest import WAIT, retained, run_call

pytestmark = pytest.mark.broker

#: Anna's support code: a ticket, which her world's ledger answers with a deduction.
DEDUCTING = ["2", "1", "2", "1234500001#", "2"]


@contextlib.asynccontextmanager
async def watching(config):
    """Everything published under ``ivr/v2/#`` from now on, as (topic, payload) in arrival order."""
    seen: list[tuple[str, bytes]] = []
    async with MqttBus(config=config, subscriptions=["ivr/v2/#"]) as bus:
        await asyncio.wait_for(bus.wait_connected(), WAIT)

        async def gather() -> None:
            async for delivery in bus.deliveries():
                seen.append((delivery.topic, delivery.payload))  # noqa: PERF401 - read while it grows

        task = asyncio.create_task(gather())
        try:
            yield seen
        finally:
            task.cancel()


async def until_seen(seen: list[tuple[str, bytes]], *wanted: tuple[str, bytes]) -> None:
    """Wait (bounded) until every one of ``wanted`` has arrived."""
    async with asyncio.timeout(WAIT):
        while not set(wanted) <= set(seen):
            await asyncio.sleep(0.01)


def world_of(connection, world, tmp_path) -> SessionWorld:
    """A private session world on the console's ``connection``, as a page gets, with a ledger of its own."""
    settings = Settings(broker=connection.config)
    return SessionWorld(name=None, world=world, connection=connection, workdir=tmp_path / "console", settings=settings)


async def test_every_events_source_said_online_before_it_published_and_cleared_it_at_its_end(
    private_broker, world, tmp_path
):
    """A console world with its ledger and a load-style IVR with its ledger: each source's status is its own."""
    config = private_broker.config
    async with watching(config) as seen:
        connection = console_connection(config)
        await asyncio.wait_for(connection.start(), WAIT)
        try:
            session = world_of(connection, world, tmp_path)
            on_console = await session.system()
            own = await build_system(world=world, workdir=tmp_path, source="load-3f2a", broker=config)
            for system in (on_console, own):
                assert (await run_call(system, DEDUCTING, number="+15550100001")).call.outcome == "routed"
                async with asyncio.timeout(WAIT):
                    await system.settle()
            await own.close()
            await session.close()
        finally:
            await connection.close()
        await until_seen(seen, (status_topic(CONSOLE), OFFLINE))  # the console's goodbye comes last
    world_source = on_console.engine.source
    assert world_source.startswith(f"{CONSOLE}/world-")
    events = [(n, json.loads(payload)["source"]) for n, (topic, payload) in enumerate(seen) if "/status/" not in topic]
    sources = {source for _, source in events}
    assert sources == {world_source, f"{world_source}-ledger", "load-3f2a", "load-3f2a-ledger"}
    for n, source in events:
        said = [payload for topic, payload in seen[:n] if topic == status_topic(source)]
        assert said[-1:] == [ONLINE], f"{source} published at {n} while its status said {said}"
    for source in sources:  # each named for its run: cleared, not left offline for ever
        assert [p for t, p in seen if t == status_topic(source)] == [ONLINE, CLEARED], source
    assert [p for t, p in seen if t == status_topic(CONSOLE)] == [ONLINE, OFFLINE]
    assert await retained(config, "ivr/v2/status/#") == {status_topic(CONSOLE): OFFLINE}  # a process's, not a run's


async def test_a_crashed_consoles_world_statuses_are_cleared_when_it_starts_again(private_broker, world, tmp_path):
    """A killed console leaves its worlds online under its Will's offline; started again, it clears those only."""
    config = private_broker.config
    async with watching(config) as seen:
        crashed = console_connection(config)
        await asyncio.wait_for(crashed.start(), WAIT)
        session = world_of(crashed, world, tmp_path)
        left = (await session.system()).engine.source
        crashed.bus.break_connection()  # as a killed process: no DISCONNECT, so the broker applies the Will
        await crashed.bus.aclose()
        await session.close()  # its clearing finds no connection to go out on
        await until_seen(seen, (status_topic(CONSOLE), OFFLINE))
        again = console_connection(config)
        await asyncio.wait_for(again.start(), WAIT)
        try:
            fresh = world_of(again, world, tmp_path)
            kept = (await fresh.system()).engine.source
            await until_seen(seen, (status_topic(left), CLEARED), (status_topic(f"{left}-ledger"), CLEARED))
            await fresh.close()
        finally:
            await again.close()
    assert [p for t, p in seen if t == status_topic(left)] == [ONLINE, CLEARED]
    assert [p for t, p in seen if t == status_topic(kept)] == [ONLINE, CLEARED]  # cleared only when it closed
    assert await retained(config, "ivr/v2/status/#") == {status_topic(CONSOLE): OFFLINE}


async def test_a_world_that_fails_to_build_leaves_no_channel_or_status_behind(private_broker, world, tmp_path):
    """A source not named under the console is refused, and leaves no channel: a second try is refused alike."""
    config = private_broker.config
    connection = console_connection(config)
    await asyncio.wait_for(connection.start(), WAIT)
    try:
        for attempt in ("first", "second"):
            folder = tmp_path / attempt
            folder.mkdir()
            with pytest.raises(ValueError, match="named under its instance"):
                await build_system(world=world, workdir=folder, source="stray", broker=config, connection=connection)
        folder = tmp_path / "third"
        folder.mkdir()
        source = connection.source("world-1")
        system = await build_system(world=world, workdir=folder, source=source, broker=config, connection=connection)
        await system.close()
    finally:
        await connection.close()
    assert await retained(config, "ivr/v2/status/#") == {status_topic(CONSOLE): OFFLINE}
