"""``wait_unless_ended``: a wait on an event that ends with the error of the task behind it."""

from __future__ import annotations

import asyncio

import pytest

from ivr.bus.base import TaskEndedError, wait_unless_ended


async def test_an_event_set_and_cleared_again_before_the_waiter_runs_still_ends_the_wait():
    """Set, then cleared by someone else before the waiter wakes (a second call notifying the publisher)."""
    event = asyncio.Event()
    worker = asyncio.create_task(asyncio.sleep(60))
    try:
        waiting = asyncio.create_task(wait_unless_ended(event, worker))
        for _ in range(3):  # the waiter and the wait it starts are both waiting
            await asyncio.sleep(0)
        event.set()
        event.clear()
        async with asyncio.timeout(5):
            await waiting  # returns: the event was set while it waited
    finally:
        worker.cancel()


async def test_the_tasks_error_ends_the_wait():
    """The task dies first: the wait raises what it died of."""

    async def fail() -> None:
        msg = "disk full"
        raise OSError(msg)

    with pytest.raises(OSError, match="disk full"):
        await wait_unless_ended(asyncio.Event(), asyncio.create_task(fail()))


async def test_a_task_that_just_ends_ends_the_wait_saying_so():
    """The task returns without the event: :class:`TaskEndedError`."""
    with pytest.raises(TaskEndedError):
        await wait_unless_ended(asyncio.Event(), asyncio.create_task(asyncio.sleep(0)))
