"""The collector settings of the long-running processes (`ivr load`, `ivr serve`, `ivr ledger run`)."""

from __future__ import annotations

import gc

import pytest

from ivr.collector import THRESHOLDS, tune_for_live_calls


@pytest.fixture
def restored_collector():
    """Whatever a test does to the collector is undone after it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_tuning_freezes_start_up_objects_and_collects_the_full_heap_rarely():
    """After tuning, what existed is frozen (never walked again) and full collections wait for 100 middle ones."""
    gc.unfreeze()
    tune_for_live_calls()
    assert gc.get_freeze_count() > 1000  # at least the modules imported so far
    assert gc.get_threshold() == THRESHOLDS
