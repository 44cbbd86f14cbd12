"""`ivr load --workers N`: N IVR processes sharing the callers, one ledger, one broker.

One IVR process is one core: as fast as possible it runs at ~700 µs of CPU per call, all on its
event loop, while the second core (the relay, the ledger, Mosquitto) has room. A call centre scales
its IVR out, so the load can too: worker ``k`` is an ``ivr load --shard k/N`` process that takes
its calls a block at a time from a file the workers share (:class:`~ivr.load.calls.CallFile`: each
call has its own caller number, so a caller's lockout stays in one IVR), keeps a directory of its
own and numbers its tickets ``k`` modulo ``N`` (the ledger deducts once per ticket ID). Every
worker has its own `ivr relay`; the ledger and the broker are shared.

The combined report adds the workers' counts; its wall time runs from the first worker's first
call to the last worker's last answer. Its digests are made over every call in index order from
the call file, as one process's are. Latency percentiles cannot be added, so each is the worst
worker's (an upper bound), and each worker's own report is kept under ``workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ivr.bus.broker import LOOPBACK, embedded_broker
from ivr.bus.url import ENV_VAR
from ivr.load.calls import CallFile, DatabaseCalls
from ivr.load.launch import digests
from ivr.load.ledger import start_ledger, verify_ledger
from ivr.load.process import ServiceEndedError, unless_one_ends
from ivr.load.procs import listener_pid, vm_hwm_mb
from ivr.load.report import LoadReport
from ivr.load.world import synthetic_world, write_fixture
from ivr.subprocesses import DIE_WITH_PARENT, end_process

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ivr.bus.url import BrokerConfig
    from ivr.load.runner import LoadOptions

__all__ = ["WorkerError", "run_workers"]

_LATENCIES: Final = ("key_to_prompt_ms", "ticket_to_answer_ms", "timer_lateness_ms")


class WorkerError(RuntimeError):
    """A worker process did not produce a report."""


async def run_workers(options: LoadOptions, *, workers: int, mix_path: Path | None = None) -> LoadReport:
    """Run ``options`` split over ``workers`` IVR processes and report on them together."""
    async with contextlib.AsyncExitStack() as stack:
        workdir = options.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-load-")))
        workdir.mkdir(parents=True, exist_ok=True)
        config = options.settings.broker
        if config is None:
            config = await stack.enter_async_context(embedded_broker())
        write_fixture(synthetic_world(seed=options.seed, customers=options.customers), workdir / "world.yaml")
        ledger_db: Path | str = options.shared_db or options.ledger_db or workdir / "ledger.db"
        ledger = None
        if not options.ledger_running:
            source = f"load-{uuid.uuid4().hex[:8]}"
            ledger = await start_ledger(
                stack, config=config, db=ledger_db, workdir=workdir, source=source, root=options.settings.root
            )
        runs = [workdir / f"worker-{k}" for k in range(workers)]
        calls: CallFile | None = None
        dealt: DatabaseCalls | None = None
        if options.shared_db is not None:  # the database the workers share deals their calls too
            dealt = await DatabaseCalls.create(options.shared_db, options.calls)
            stack.push_async_callback(dealt.close)
        else:
            calls = CallFile.create(workdir / "calls.db", options.calls)
            stack.callback(calls.close)
        working = asyncio.gather(
            *(
                _worker(
                    options,
                    config=config,
                    shard=(k, workers),
                    calls=calls.path if calls else None,
                    workdir=run,
                    mix_path=mix_path,
                )
                for k, run in enumerate(runs)
            )
        )
        try:
            # The workers wait for a ledger they did not start: if it dies, only this process can tell.
            reports = await unless_one_ends(working, [ledger] if ledger else [])
        except ServiceEndedError as exc:
            msg = f"the run stopped: {exc}"
            raise WorkerError(msg) from exc
        report = _combine(options, config, reports)
        signatures = calls.signatures() if calls else await dealt.signatures() if dealt else {}
        report.plan_digest, report.outcome_digest = digests(signatures)
        report.rss_mb["ledger"] = vm_hwm_mb(ledger.pid) if ledger else None
        report.rss_mb["broker"] = vm_hwm_mb(listener_pid(config.host, config.port)) if config.host == LOOPBACK else None
        if ledger is not None:
            await ledger.stop()
        if ledger is not None or options.ledger_db is not None:
            if options.shared_db is not None:  # one database: every worker's tickets are in it
                verdict = await verify_ledger(ledger_db, directory=options.shared_db)
            else:
                [first, *others] = [run / "ivr.db" for run in runs]
                verdict = await verify_ledger(ledger_db, directory=first, more=others)
            report.verify = verdict.for_report(own_ledger=ledger is not None)
        return report


async def _worker(  # noqa: PLR0913 - one keyword per part of the worker's command line
    options: LoadOptions,
    *,
    config: BrokerConfig,
    shard: tuple[int, int],
    calls: Path | None,
    workdir: Path,
    mix_path: Path | None,
) -> dict[str, Any]:
    """One `ivr load --shard` process to its end; its JSON report."""
    shards = shard[1]
    argv = [sys.executable, "-m", "ivr", "load", "--json", "--no-progress", "--ledger-running"]
    argv += ["--calls", str(options.calls), "--shard", f"{shard[0]}/{shards}"]
    argv += ["--calls-from", str(calls)] if calls else []
    argv += ["--seed", str(options.seed)]
    argv += [
        "--rate",
        str(options.rate / shards),
        "--root",
        options.settings.root,
        "--customers",
        str(options.customers),
    ]
    argv += ["--workdir", str(workdir), "--relay" if options.relay else "--no-relay"]
    if options.shared_db is not None:
        argv += ["--store", options.shared_db]
    if options.concurrency:
        argv += ["--concurrency", str(max(1, options.concurrency // shards))]
    if options.realtime:
        argv.append("--realtime")
    if mix_path is not None:
        argv += ["--mix", str(mix_path)]
    # The broker URL travels in the environment: a password in argv would show in `ps`.
    env = {**os.environ, ENV_VAR: config.secret_url()}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        preexec_fn=DIE_WITH_PARENT,
    )
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        await end_process(proc)  # the run stopped: the worker and its relay stop too
        raise
    try:
        report: dict[str, Any] = json.loads(out)
    except ValueError:
        msg = f"worker {shard[0]} exited with status {proc.returncode} and no report: {err.decode()[-1000:]}"
        raise WorkerError(msg) from None
    return report


def _combine(options: LoadOptions, config: BrokerConfig, reports: list[dict[str, Any]]) -> LoadReport:
    """The workers' reports as one."""
    start = min(r["started_at"] for r in reports)
    combined = LoadReport(
        mode="realtime" if options.realtime else "fast",
        seed=options.seed,
        broker=str(config),
        calls=options.calls,
        concurrency=sum(r["concurrency"] for r in reports),
        rate=options.rate,
        started_at=start,
        calls_seconds=round(max(r["started_at"] + r["calls_seconds"] for r in reports) - start, 3),
        total_seconds=round(max(r["started_at"] + r["total_seconds"] for r in reports) - start, 3),
    )
    for name in ("completed", "failed", "peak_live", "events", "tickets", "deductible", "deducted", "rejected"):
        setattr(combined, name, sum(r[name] for r in reports))
    combined.errors = [e for r in reports for e in r["errors"]]
    combined.kinds = dict(sorted(sum((Counter(r["kinds"]) for r in reports), Counter()).items()))
    combined.outcomes = dict(sorted(sum((Counter(r["outcomes"]) for r in reports), Counter()).items()))
    combined.event_bytes = round(sum(r["event_bytes"] * r["events"] for r in reports) / max(1, combined.events))
    for name in _LATENCIES:
        if reports[0].get(name) is not None:
            setattr(combined, name, _worst(r[name] for r in reports))
    for k, r in enumerate(reports):
        combined.rss_mb[f"ivr-{k}"] = r["rss_mb"].get("ivr")
        combined.rss_mb[f"relay-{k}"] = r["rss_mb"].get("relay")
    combined.workers = reports
    return combined


def _worst(each: Iterable[dict[str, Any]]) -> dict[str, float | int | None]:
    """Each percentile's worst value over the workers, and every sample counted."""
    summaries = list(each)
    worst: dict[str, float | int | None] = {"samples": sum(s["samples"] for s in summaries)}
    for key in summaries[0]:
        if key != "samples":
            values = [s[key] for s in summaries if s[key] is not None]
            worst[key] = max(values) if values else None
    return worst
