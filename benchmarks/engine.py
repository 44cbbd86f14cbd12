"""The engine alone: calls/s in virtual time, no bus, on the default fixture world.

Runs ``--calls`` calls from a fixed mix, ``--concurrency`` at a time as tasks in one loop, each on
its own virtual clock, against a real SQLite directory (outbox included) and the in-process
ledger link settled at the end. Prints calls/s, transitions/s and the peak RSS.

    .venv/bin/python benchmarks/engine.py --calls 20000 --concurrency 500
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from datetime import datetime
from itertools import cycle
from pathlib import Path

from ivr import worlds
from ivr.bootstrap import build_system
from ivr.callers import HANGUP, Press, ScriptedCaller, Step
from ivr.clock import VirtualClock
from ivr.directory.fixtures import load_world
from ivr.logs import configure

START = datetime.fromisoformat("2026-11-17T10:00:00-05:00")
MIX: list[tuple[str, list[Step]]] = [
    ("sales", [Press("1")]),
    ("code", [Press("2"), Press("1"), Press("2"), Press("4000000001#"), Press("3")]),  # unlimited: no deduction
    ("ticket", [Press("2"), Press("1"), Press("1"), Press("1000001#")]),
    ("key", [Press("2"), Press("2"), Press("3"), Press("40000001#"), Press("1")]),
    ("closed", [Press("2"), Press("1"), Press("1"), Press("1000002#"), HANGUP]),
    ("wrong-length", [Press("2"), Press("1"), Press("2"), Press("123#"), HANGUP]),
]


async def main(calls: int, concurrency: int) -> None:
    """Run the mix and print the figures."""
    configure(level="error")
    world = load_world(worlds.packaged(worlds.DEFAULT))
    with tempfile.TemporaryDirectory() as tmp:
        system = await build_system(world=world, workdir=Path(tmp))
        gate = asyncio.Semaphore(concurrency)
        mix = cycle(MIX)
        transitions = 0

        async def one(i: int, steps: list[Step]) -> None:
            nonlocal transitions
            async with gate:
                clock = VirtualClock(start=START)
                # Distinct caller numbers: the closed-ticket denials must not lock one number out.
                record = await system.engine.run_call(
                    ScriptedCaller(steps, clock=clock), clock=clock, number=f"+1555{i:07d}"
                )
                transitions += len(record.call.path) - 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i, next(mix)[1]) for i in range(calls)))
        elapsed = time.perf_counter() - started
        await system.settle()
        await system.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"calls: {calls}  concurrency: {concurrency}  time: {elapsed:.2f}s")
    print(f"calls/s: {calls / elapsed:,.0f}  transitions/s: {transitions / elapsed:,.0f}  peak RSS: {rss_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency))
