"""An IVR process for the SIGKILL test on PostgreSQL: the fault suite's calls, published by its own outbox publisher.

Run as ``python -m tests.faults.ivr_process STORE_URL FIRST COUNT RATE`` from the repository, the
broker's URL in ``IVR_BROKER``: it builds the IVR as the fault suite does (source
:data:`~tests.faults.conftest.SOURCE`, the fault world, the ledger elsewhere) on the PostgreSQL
store, says ``ready``, runs calls FIRST … FIRST+COUNT-1 of the deducting plan, waits until its
outbox has nothing unsent (rows an earlier, killed process committed included), and prints one
JSON line: calls completed and failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from ivr.bootstrap import build_system
from ivr.bus.url import broker_from_env
from ivr.load.launch import Launcher
from ivr.load.plan import Planner
from ivr.load.world import Catalog, synthetic_world
from ivr.stores import Store
from tests.conftest import TUESDAY_10AM
from tests.faults.conftest import DEDUCTING, SOURCE


async def main(url: str, first: int, count: int, rate: float) -> None:
    """Build, call, drain, report."""
    world = synthetic_world(seed=2026, customers=60)
    with tempfile.TemporaryDirectory(prefix="ivr-fault-") as workdir:
        system = await build_system(
            world=world,
            workdir=Path(workdir),
            source=SOURCE,
            broker=broker_from_env(),
            own_ledger=False,
            store=Store(dsn=url),
        )
        try:
            planner = Planner(seed=2026, mix=DEDUCTING, catalog=Catalog.of(world))
            launcher = Launcher(engine=system.engine, planner=planner, call_prefix="fault", start=TUESDAY_10AM)
            print("ready", flush=True)  # noqa: T201 - the test reads it
            await launcher.run(range(first, first + count), rate=rate, concurrency=50)
            system.link.notify()
            async with asyncio.timeout(60):
                while await system.directory.unsent(1):
                    await asyncio.sleep(0.05)
        finally:
            await system.close()
    report = {"completed": launcher.completed, "failed": launcher.failed, "errors": launcher.errors}
    print(json.dumps(report), flush=True)  # noqa: T201 - the test reads it


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
