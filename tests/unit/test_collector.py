"""The collector paced by the event loop, as `ivr load` runs it around thousands of live calls."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from ivr.collector import YOUNG_EVERY, paced_collection


class _Node:
    """Something that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def restored_collector():
    """Whatever a test does to the collector is undone after it."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


@pytest.mark.usefixtures("restored_collector")
async def test_automatic_collection_is_off_while_entered_and_back_after():
    """Inside, the collector runs only on the loop's schedule and start-up objects are frozen; outside, as before."""
    gc.unfreeze()
    gc.enable()
    async with paced_collection():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 1000  # at least the modules imported so far
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_collector")
async def test_cyclic_garbage_is_still_reclaimed_on_the_schedule():
    """A reference cycle dropped inside is collected within a few young collections, not left to grow."""
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        async with paced_collection():
            a, b = _Node(), _Node()
            a.other, b.other = b, a
            watch = weakref.ref(a)
            del a, b
            await asyncio.sleep(YOUNG_EVERY * 8)
            assert watch() is None
    finally:
        gc.callbacks.remove(seen)
    assert collections
    assert set(collections) == {1}  # the two younger generations together, never the young alone


@pytest.mark.usefixtures("restored_collector")
async def test_an_object_that_outlives_one_collection_is_old_after_it():
    """A live call's object is walked once on its way to the old generation, not once per younger generation."""
    async with paced_collection():
        survivor = _Node()
        await asyncio.sleep(YOUNG_EVERY * 3)
        assert any(o is survivor for o in gc.get_objects(generation=2))
