"""A connection that stays open but goes silent: the bus gives it up and connects anew.

A broker can stop acknowledging on one connection without closing it (RabbitMQ 3.10 does after a
message over its ``max_message_size``; a half-dead route does the same). TCP and the keepalive
see nothing wrong for a long time, so only the missing PUBACKs tell. The test puts a relay of
its own between the bus and a real Mosquitto and stops passing the broker's bytes on the first
connection, leaving both of its sockets open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Self

import pytest

from ivr.bus.base import PublishTimeoutError
from ivr.bus.mqtt import Backoff, MqttBus

pytestmark = pytest.mark.broker

WAIT = 20.0


class SilencingRelay:
    """A TCP relay to the broker; :meth:`silence` stops passing the broker's bytes on the connections open now."""

    def __init__(self, host: str, port: int) -> None:
        """Relay to the broker at ``host``:``port``; nothing listens until entered."""
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._silenced: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> Self:
        """Listen on a free loopback port (:attr:`port`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop listening and close every relayed connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def silence(self) -> None:
        """From now on, the connections already open get nothing more from the broker (and stay open)."""
        for silenced in self._silenced:
            silenced.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [client_writer, broker_writer]
        silenced = asyncio.Event()
        self._silenced.append(silenced)
        for task in (
            asyncio.create_task(self._pump(client_reader, broker_writer, None)),
            asyncio.create_task(self._pump(broker_reader, client_writer, silenced)),
        ):
            self._tasks.add(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, silenced: asyncio.Event | None) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if silenced is not None and silenced.is_set():
                    continue  # read and dropped: the sender is not held back, the receiver hears nothing
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_connection_that_stops_acknowledging_is_given_up_and_the_next_publish_goes_through(
    broker, client_id, root
):
    """No PUBACK within the publish timeout on an open connection: that publish fails, the bus reconnects."""
    async with SilencingRelay(broker.host, broker.port) as relay:
        config = dataclasses.replace(broker, port=relay.port)
        fast = Backoff(initial=0.02, maximum=0.2)
        async with MqttBus(config=config, client_id=client_id("stuck"), publish_timeout=1.0, backoff=fast) as bus:
            async with asyncio.timeout(WAIT):
                await bus.wait_connected()
            await bus.publish(f"{root}/call/started", b"before")
            relay.silence()
            with pytest.raises(PublishTimeoutError):
                await bus.publish(f"{root}/call/started", b"unanswered")
            async with asyncio.timeout(WAIT):
                while bus.connections < 2:  # the bus has no event for a reconnection
                    await asyncio.sleep(0.02)
                await bus.wait_connected()
                await bus.publish(f"{root}/call/started", b"after")
    assert bus.connections == 2
