"""The ledger's consumer loop around its announcer: a ledger that cannot announce does not go on as if it could."""

from __future__ import annotations

import asyncio
import re

import pytest

from ivr.bus.local import LocalBroker, LocalBus
from ivr.events import PARTITIONS
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.partitions import PartitionShare
from ivr.ledger.service import LedgerService
from ivr.ledger.store import SqliteLedgerStore


async def test_an_announcer_that_dies_ends_the_run_with_its_error(tmp_path, monkeypatch):
    """The store fails the announcer's read (not a broker outage): run() ends, raising that error."""
    store = await SqliteLedgerStore.open(tmp_path / "ledger.db")

    async def broken(limit: int = 1000, *, after: int = 0, ledger: str | None = None) -> list[tuple[int, str, str]]:
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
    """``--share GROUP`` subscribes to ``$share/GROUP/<filter>``; a name that is not one topic level is refused."""
    assert LedgerConsumer.subscriptions("t/v1", "ledgers") == ["$share/ledgers/t/v1/ticket/created/+"]
    assert LedgerConsumer.subscriptions("t/v1") == ["t/v1/ticket/created/+"]
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError, match="one topic level"):
            LedgerConsumer.subscriptions("t/v1", bad)


def test_partition_shares_cover_every_partition_once():
    """``--partitions K/N`` for K = 1..N takes each of the 16 partitions exactly once, whatever N."""
    for n in range(1, PARTITIONS + 1):
        taken = [p for k in range(1, n + 1) for p in PartitionShare(k, n).partitions]
        assert sorted(taken) == list(range(PARTITIONS)), n
    assert PartitionShare.parse("2/3").partitions == [1, 4, 7, 10, 13]
    assert LedgerConsumer.subscriptions("t/v2", partitions=PartitionShare(2, 8)) == [
        "t/v2/ticket/created/1",
        "t/v2/ticket/created/9",
    ]
    assert LedgerConsumer.subscriptions("t/v2", "g", PartitionShare(8, 8)) == [
        "$share/g/t/v2/ticket/created/7",
        "$share/g/t/v2/ticket/created/15",
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("3", "a share is K/N"),
        ("a/b", "a share is K/N"),
        ("-1/2", "a share is K/N"),
        ("0/2", "the share is 1-2 of 2, not 0"),
        ("3/2", "the share is 1-2 of 2, not 3"),
        ("1/0", "the number of ledgers is 1-16"),
        ("1/17", "the number of ledgers is 1-16"),
    ],
)
def test_a_malformed_share_is_refused_saying_why(text, says):
    """A share that is not K/N with 1 <= K <= N <= 16 is a clear error."""
    with pytest.raises(ValueError, match=re.escape(says)):
        PartitionShare.parse(text)
