"""The inbox both buses receive into: batches, stale connections, and the end."""

from __future__ import annotations

import asyncio

import pytest

from ivr.bus.base import Delivery
from ivr.bus.inbox import Inbox


def delivery(n: int) -> Delivery:
    """A delivery whose payload is ``n``."""
    return Delivery(topic="t", payload=str(n).encode())


async def test_take_returns_what_is_waiting_up_to_the_limit_in_order():
    """Five waiting, a limit of two: 2, 2, then 1 — never a wait while any is waiting."""
    inbox = Inbox(skip_stale=False)
    generation = inbox.new_generation()
    for n in range(5):
        inbox.put(generation, delivery(n))
    sizes = [len(await inbox.take(2)) for _ in range(3)]
    assert sizes == [2, 2, 1]


async def test_take_waits_for_the_first_delivery():
    """An empty inbox makes the taker wait until something is put."""
    inbox = Inbox(skip_stale=False)
    taking = asyncio.ensure_future(inbox.take(10))
    await asyncio.sleep(0.01)
    assert not taking.done()
    inbox.put(inbox.new_generation(), delivery(1))
    assert [d.payload for d in await asyncio.wait_for(taking, 1)] == [b"1"]


async def test_deliveries_of_a_dropped_connection_are_skipped_with_manual_ack():
    """A message from an earlier connection was never acked: the broker sends it again, so it is skipped."""
    inbox = Inbox(skip_stale=True)
    first = inbox.new_generation()
    inbox.put(first, delivery(1))
    second = inbox.new_generation()
    inbox.put(second, delivery(2))
    assert [d.payload for d in await inbox.take(10)] == [b"2"]


async def test_without_manual_ack_nothing_is_skipped():
    """Acked on receipt, a message is the consumer's to keep whatever happened to its connection."""
    inbox = Inbox(skip_stale=False)
    inbox.put(inbox.new_generation(), delivery(1))
    inbox.put(inbox.new_generation(), delivery(2))
    assert [d.payload for d in await inbox.take(10)] == [b"1", b"2"]


async def test_closing_ends_the_iteration_after_what_is_left():
    """What arrived before the close is still handed out; then the iteration ends."""
    inbox = Inbox(skip_stale=False)
    inbox.put(inbox.new_generation(), delivery(1))
    inbox.close()
    assert [d.payload async for d in inbox.deliveries()] == [b"1"]
    assert await inbox.take(10) == []


async def test_closing_with_an_error_raises_it_to_the_taker():
    """A bus that died says why to whoever waits on its deliveries."""
    inbox = Inbox(skip_stale=False)
    waiting = asyncio.ensure_future(inbox.take(1))
    await asyncio.sleep(0)
    inbox.close(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError, match="broker gone"):
        await asyncio.wait_for(waiting, 1)
