"""The call file `ivr load --workers` deals from: every call to exactly one worker, whoever asks first."""

from __future__ import annotations

import threading

import pytest

from ivr.load.calls import CallFile
from ivr.load.launch import digests


def test_blocks_are_dealt_in_order_until_none_are_left(tmp_path):
    """Two workers' connections taking turns: consecutive blocks, a short last one, then nothing."""
    dealer = CallFile.create(tmp_path / "calls.db", 45)
    first, second = CallFile.open(dealer.path), CallFile.open(dealer.path)
    try:
        taken = [first.take(20), second.take(20), first.take(20), second.take(20)]
    finally:
        first.close()
        second.close()
        dealer.close()
    assert taken == [range(20), range(20, 40), range(40, 45), range(45, 45)]


def test_workers_racing_for_calls_get_each_one_exactly_once(tmp_path):
    """Four threads, each with its own connection, taking blocks as fast as they can: no call twice, none missed."""
    dealer = CallFile.create(tmp_path / "calls.db", 50_000)
    got: list[list[int]] = [[] for _ in range(4)]
    ready = threading.Barrier(4)

    def worker(mine: list[int]) -> None:
        calls = CallFile.open(dealer.path)
        try:
            ready.wait()
            mine.extend(calls.indices())
        finally:
            calls.close()

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    dealer.close()
    every = sorted(i for mine in got for i in mine)
    assert every == list(range(50_000))


def test_signatures_from_several_workers_make_the_digests_of_one_run(tmp_path):
    """Signatures recorded by two workers, read back whole, digest as one process's would."""
    signatures = {i: (f"plan-{i}", f"outcome-{i % 3}") for i in range(10)}
    dealer = CallFile.create(tmp_path / "calls.db", 10)
    try:
        for part in (dict(list(signatures.items())[::2]), dict(list(signatures.items())[1::2])):
            worker = CallFile.open(dealer.path)
            worker.record(part)
            worker.close()
        assert digests(dealer.signatures()) == digests(signatures)
    finally:
        dealer.close()


def test_a_missing_call_file_is_named(tmp_path):
    """A worker pointed at no file says which."""
    with pytest.raises(FileNotFoundError, match=r"calls\.db"):
        CallFile.open(tmp_path / "calls.db")
