"""The garbage collector's settings for a process that holds thousands of live calls.

CPython's defaults (700, 10, 10) suit a short script, not an event loop with 10,000 live calls: a
call is ~60 tracked objects (its coroutines, model, timer handles), so the heap holds ~600,000,
and every time it grows by a quarter a full collection walks all of it with the loop stopped.
Measured with ``ivr load --calls 10000 --rate 1000 --realtime`` (docs/performance.md): with the
defaults, 18 full collections of up to 420 ms in a 46 s run made 95 % of the no-input timers that
fired more than 50 ms late (p99 lateness ~350 ms); with the settings below, p99 ~30 ms.

- :func:`gc.freeze` first: modules, the flow's tables and everything built at start-up live for the
  process's lifetime, so no collection needs to walk them again.
- A larger young generation (10,000 rather than 700) makes young collections rarer; the middle
  one is collected every 4th time so it never grows past ~40,000 objects (a few ms each).
- Full collections only after 100 middle ones (~4 million allocations): they still happen, so
  cyclic garbage is reclaimed, but a few times an hour under load rather than every few seconds.
  Most of a call's objects are freed by reference counting the moment the call ends anyway.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["THRESHOLDS", "tune_for_live_calls"]

#: ``gc.set_threshold`` arguments: young, middle and full generation.
THRESHOLDS: Final = (10_000, 4, 100)


def tune_for_live_calls() -> None:
    """Freeze what exists now and collect less often; call once, after start-up, before the calls."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
