"""The ledger's consumer loop around its announcer: a ledger that cannot announce does not go on as if it could."""

from __future__ import annotations

import asyncio

import pytest

from ivr.bus.local import LocalBroker, LocalBus
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.service import LedgerService
from ivr.ledger.store import SqliteLedgerStore


async def test_an_announcer_that_dies_ends_the_run_with_its_error(tmp_path, monkeypatch):
    """The store fails the announcer's read (not a broker outage): run() ends, raising that error."""
    store = await SqliteLedgerStore.open(tmp_path / "ledger.db")

    async def broken(limit: int = 1000, *, after: int = 0) -> list[tuple[int, str, str]]:
        msg = "disk gone"
        raise OSError(msg)

    monkeypatch.setattr(store, "unsent", broken)
    try:
        async with LocalBus(
            broker=LocalBroker(), client_id="ledger", subscriptions=LedgerConsumer.subscriptions(), manual_ack=True
        ) as bus:
            consumer = LedgerConsumer(bus=bus, service=LedgerService(store=store, source="ledger"))
            running = asyncio.create_task(consumer.run())
            done, _ = await asyncio.wait({running}, timeout=3)
            if not done:  # still consuming with a dead announcer: the fault this test is about
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            assert done, "the run went on after its announcer died"
            with pytest.raises(OSError, match="disk gone"):
                running.result()
    finally:
        await store.close()


def test_a_shared_subscription_is_one_topic_level_under_share():
    """``--share GROUP`` subscribes to ``$share/GROUP/<topic>``; a name that is not one topic level is refused."""
    assert LedgerConsumer.subscriptions("t/v1", "ledgers") == ["$share/ledgers/t/v1/ticket/created"]
    assert LedgerConsumer.subscriptions("t/v1") == ["t/v1/ticket/created"]
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError, match="one topic level"):
            LedgerConsumer.subscriptions("t/v1", bad)
