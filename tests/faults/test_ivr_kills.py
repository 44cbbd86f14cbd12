"""An IVR process on PostgreSQL SIGKILLed mid-run and started again: nothing committed lost, nothing deducted twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivr.bus.url import ENV_VAR
from ivr.load.ledger import verify_ledger
from ivr.stores import open_directory, open_ledger, parse_store_url
from tests.faults.conftest import assert_ledger_exact, deductible_by_contract, size

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]
#: Calls per IVR process; each but the last is SIGKILLed once it has committed KILL_AFTER tickets.
STRETCH, KILLS, KILL_AFTER = size(full=(2_000, 5, 600), short=(300, 2, 60))
RATE = 150.0


async def tickets(conn: asyncpg.Connection) -> int:
    """Tickets the calls have committed so far."""
    return await conn.fetchval("SELECT count(*) FROM tickets WHERE call_id IS NOT NULL")


class IvrProcess:
    """An IVR process (``tests/faults/ivr_process.py``) running calls ``first`` … ``first + STRETCH - 1``."""

    def __init__(self, store_url: str, broker_url: str, first: int, log: Path) -> None:
        """Say what to run; :meth:`start` runs it, its stderr going to ``log``."""
        self.argv = [sys.executable, "-m", "tests.faults.ivr_process", store_url, str(first), str(STRETCH), str(RATE)]
        self.env = {**os.environ, ENV_VAR: broker_url}
        self.log = log
        self.lines: list[bytes] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start it and return once it says ``ready``; its stdout is read from then on, so it never blocks."""
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=REPO, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=err
            )
        self.reading = asyncio.create_task(self._read())
        async with asyncio.timeout(30):
            while b"ready" not in self.lines:
                assert self.proc.returncode is None, self.output()
                await asyncio.sleep(0.01)

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.strip())

    def output(self) -> str:
        """Its last stdout lines and the end of its stderr, for a failure's message."""
        return f"{self.lines[-5:]} {self.log.read_text()[-2000:]}"

    async def finish(self) -> dict[str, Any]:
        """Its report once it has ended."""
        assert self.proc is not None
        assert self.reading is not None
        async with asyncio.timeout(90):
            await self.proc.wait()
            await self.reading
        assert self.proc.returncode == 0, self.output()
        report: dict[str, Any] = json.loads(self.lines[-1])
        return report


async def until_deducted(store_url: str, expected: dict[str, int]) -> None:
    """Wait (bounded) until the ledger's store holds a deduction for every deductible ticket."""
    ledger = await open_ledger(parse_store_url(store_url))
    try:
        async with asyncio.timeout(60):
            while await ledger.deducted() != expected:
                await asyncio.sleep(0.1)
    finally:
        await ledger.close()


@pytest.mark.parametrize("fault_backend", ["postgresql"], indirect=True)
async def test_an_ivr_process_killed_mid_run_loses_and_doubles_nothing(
    private_broker, ledger_process, fault_store, fault_world, tmp_path
):
    """IVR processes on one schema, each SIGKILLed mid-run (short: 2 kills) but the last.

    What a killed process committed (tickets, failures, their events) is published by the next
    one, none twice as a deduction: one deduction per deductible ticket, balances exact, verify OK.
    """
    url = fault_store.dsn
    broker_url = private_broker.config.secret_url()
    watch = await asyncpg.connect(url)
    try:
        committed_at_kill: list[int] = []
        left_unsent: list[int] = []  # rows a killed process committed and had not marked sent
        for run in range(KILLS):
            ivr = IvrProcess(url, broker_url, run * STRETCH, tmp_path / f"ivr-{run}.log")
            await ivr.start()
            assert ivr.proc is not None
            async with asyncio.timeout(60):
                # Killed past KILL_AFTER new tickets, at an instant when some committed rows are not yet
                # marked sent: the case the restart must repair (a quiet machine's publisher keeps up).
                while (
                    await tickets(watch) < sum(committed_at_kill) + KILL_AFTER
                    or await watch.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
                ):
                    assert ivr.proc.returncode is None, ivr.output()
                    await asyncio.sleep(0.01)
            assert ivr.proc.returncode is None  # killed while its calls were running
            ivr.proc.kill()
            await ivr.proc.wait()
            left_unsent.append(await watch.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            committed_at_kill.append(await tickets(watch) - sum(committed_at_kill))
        last = IvrProcess(url, broker_url, KILLS * STRETCH, tmp_path / "ivr-last.log")
        await last.start()
        report = await last.finish()
        assert (report["completed"], report["failed"]) == (STRETCH, 0), report["errors"]
        events, distinct, unsent = await watch.fetchrow(
            "SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox"
        )
        assert events == distinct
        assert unsent == 0  # what the killed processes committed was published by the last
        assert sum(left_unsent) > 0, left_unsent  # some kill left committed rows for the next process
    finally:
        await watch.close()

    directory = await open_directory(parse_store_url(url))
    try:
        system = type("Directory", (), {"directory": directory})
        expected = await deductible_by_contract(system)
    finally:
        await directory.close()
    assert sum(expected.values()) > STRETCH // 3
    await until_deducted(url, dict(expected))
    await ledger_process.stop()
    await assert_ledger_exact(url, fault_world, expected)
    verdict = await verify_ledger(url, directory=url)
    assert verdict.ok, verdict.output
    assert (verdict.deductions, verdict.rejections, verdict.problems) == (sum(expected.values()), 0, 0)
