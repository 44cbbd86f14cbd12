"""An IVR process for the cross-process lockout test: wrong codes from one number, all at once.

Run as ``python tests/storage/guessing_ivr.py URL SCHEMA NAME CALLS``: it opens the directory in
PostgreSQL, says ``ready``, waits for the test to let go of the advisory lock :data:`START` (the
database wakes every waiter at once, so the processes call together), runs CALLS calls from one
number each typing a wrong support code, and prints one JSON line: its calls, how many were
denied after a lookup, and how many were denied or locked out.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone

import asyncpg

from ivr.auth.decisions import Reason
from ivr.callers import HANGUP, Press, ScriptedCaller
from ivr.clock import VirtualClock
from ivr.directory.postgres import PostgresDirectory
from ivr.engine import Engine
from ivr.events import EventType

GUESSER = "+15550666666"
#: The advisory lock the test holds until every process is ready.
START = 4_215_015
TUESDAY_10AM = datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


async def main(url: str, schema: str, name: str, calls: int) -> None:
    """Open, wait for the start, guess, report."""
    directory = await PostgresDirectory.open(url, schema=schema)
    engine = Engine(directory=directory, source=name)
    start = await asyncpg.connect(url)
    print("ready", flush=True)  # noqa: T201 - the test reads it
    await start.execute("SELECT pg_advisory_lock_shared($1)", START)
    await start.close()

    async def guess(i: int):
        clock = VirtualClock(start=TUESDAY_10AM)
        caller = ScriptedCaller([Press("212"), Press(f"{9_200_000_000 + i}#"), HANGUP], clock=clock)
        return await engine.run_call(caller, clock=clock, number=GUESSER, call_id=f"{name}-{i:02d}")

    records = await asyncio.gather(*(guess(i) for i in range(calls)))
    await directory.close()
    denied = [any(e.type == EventType.AUTH_DENIED for e in r.events) for r in records]
    locked = [r.call.reason == Reason.LOCKED_OUT for r in records]
    stopped = sum(d or k for d, k in zip(denied, locked, strict=True))
    print(json.dumps({"calls": len(records), "denied": sum(denied), "stopped": stopped}), flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
