"""One load run: a synthetic world, the real system over a real broker, `ivr ledger` as a process.

The IVR is built the way production builds it (``build_system`` with a broker and
``own_ledger=False``), so the run goes through the outbox, the publisher, Mosquitto, the ledger
process and back. The outbox is published by `ivr relay`, a third process, unless the options
say ``relay=False`` (then by the IVR's own publisher task, as replay and the console do). Calls
start at ``rate`` per second (or as fast as ``concurrency`` allows), each from its seeded plan
(`ivr.load.plan`):

- as fast as possible, each call is a :class:`~ivr.callers.ScriptedCaller` on its own virtual
  clock, so think times and silences cost no real time;
- in real time, each call is a :class:`~ivr.callers.LiveCaller` on the real clock, its keys
  pressed as their think times elapse, so thousands of calls are live at once, waiting.

Every measurement is taken from outside the engine (`ivr.load.metrics`). The run ends when the
ledger has answered every deductible ticket; then `ivr ledger verify` checks the ledger's file
against the IVR's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ivr.bootstrap import answers_bus, build_system
from ivr.bus.broker import LOOPBACK, embedded_broker
from ivr.clock import RealClock
from ivr.directory.fixtures import US_EASTERN
from ivr.load.calls import CallFile, DatabaseCalls
from ivr.load.launch import Launcher
from ivr.load.ledger import LedgerProcess, start_ledger, verify_ledger
from ivr.load.metrics import AnswerLatency, EventCount, KeyLatency, TimerLateness
from ivr.load.mix import default_mix
from ivr.load.plan import Planner
from ivr.load.process import RelayProcess, ServiceEndedError, unless_one_ends
from ivr.load.procs import listener_pid, peak_rss_mb, vm_hwm_mb
from ivr.load.report import LoadReport, Progress
from ivr.load.world import Catalog, synthetic_world, write_fixture
from ivr.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping

    from ivr.bootstrap import System
    from ivr.bus.url import BrokerConfig
    from ivr.directory.fixtures import World
    from ivr.load.mix import Mix

__all__ = ["DEFAULT_CONCURRENCY", "START", "LoadError", "LoadOptions", "run_load"]

#: Where every virtual clock starts: a Tuesday, 10:00 US Eastern.
START: Final = datetime(2026, 11, 17, 10, 0, tzinfo=US_EASTERN)
#: Calls at once as fast as possible (real time: every call at once, as the rate starts them).
DEFAULT_CONCURRENCY: Final = 500
_PROGRESS_EVERY: Final = 0.5
#: ``System.settle`` gives up after 30 s; a backlog is waited out for as long as it shrinks.
_SETTLE_ROUNDS: Final = 20
_ANSWER_WAIT: Final = 30.0


class LoadError(RuntimeError):
    """A run that cannot start (a work folder holding an earlier run, a broker that is not there)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """What `ivr load` was asked for."""

    calls: int
    rate: float = 0.0  # calls started per second; 0: as fast as the concurrency allows
    concurrency: int | None = None
    mix: Mix | None = None
    seed: int = 1
    realtime: bool = False
    ledger_running: bool = False  # an `ivr ledger` already consumes from the broker
    ledger_db: Path | None = None  # its file, for verify (ours: <workdir>/ledger.db)
    workdir: Path | None = None  # None: a temporary folder, removed afterwards
    customers: int = 300
    relay: bool = True  # the outbox published by `ivr relay` (a process of its own), not by the IVR
    shard: tuple[int, int] = (0, 1)  # this run is IVR k of n, numbering its tickets k modulo n (`--workers`)
    calls_from: Path | None = None  # a CallFile shared with the other IVRs (`--workers`); None: every call
    #: The broker (None: a private Mosquitto on a free loopback port), the topic root, the store
    #: (PostgreSQL for the IVRs and the ledger, the run's own schema; None: SQLite files), the pepper.
    settings: Settings = field(default_factory=Settings)

    @property
    def shared_db(self) -> str | None:
        """The PostgreSQL URL every process of the run names, or ``None`` on SQLite files."""
        store = self.settings.store
        return store.dsn if store is not None else None


async def run_load(options: LoadOptions, *, on_progress: Callable[[Progress], None] | None = None) -> LoadReport:
    """Run the load described by ``options`` and report on it."""
    if options.calls < 1:
        msg = "a load run needs at least one call"
        raise LoadError(msg)
    async with contextlib.AsyncExitStack() as stack:
        if options.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-load-")))
        else:
            workdir = options.workdir
            workdir.mkdir(parents=True, exist_ok=True)
            if (workdir / "ivr.db").exists():
                msg = f"{workdir} holds an earlier run's ivr.db: give an empty work folder"
                raise LoadError(msg)
        config = options.settings.broker
        if config is None:
            config = await stack.enter_async_context(embedded_broker())
        world = synthetic_world(seed=options.seed, customers=options.customers)
        write_fixture(world, workdir / "world.yaml")
        run = _LoadRun(options, config=config, workdir=workdir, world=world)
        try:
            return await run.execute(stack, on_progress)
        except ServiceEndedError as exc:  # the ledger or the relay: at start-up, or during the calls
            msg = f"the run stopped: {exc}"
            raise LoadError(msg) from exc


class _LoadRun:
    """One run's parts and measurements, from the ledger's start to `ivr ledger verify`."""

    def __init__(self, options: LoadOptions, *, config: BrokerConfig, workdir: Path, world: World) -> None:
        self.options = options
        self.config = config
        self.workdir = workdir
        self.world = world
        self.planner = Planner(seed=options.seed, mix=options.mix or default_mix(), catalog=Catalog.of(world))
        self.concurrency = options.concurrency or (options.calls if options.realtime else DEFAULT_CONCURRENCY)
        self.key_latency = KeyLatency()
        self.events = EventCount()
        self.lateness = TimerLateness(RealClock())
        self.report = LoadReport(
            mode="realtime" if options.realtime else "fast",
            seed=options.seed,
            broker=str(config),
            calls=options.calls,
            concurrency=self.concurrency,
            rate=options.rate,
        )

    async def execute(
        self, stack: contextlib.AsyncExitStack, on_progress: Callable[[Progress], None] | None
    ) -> LoadReport:
        options, report = self.options, self.report
        source = f"load-{uuid.uuid4().hex[:8]}"
        ledger_db: Path | str = options.shared_db or options.ledger_db or self.workdir / "ledger.db"
        # On PostgreSQL the IVR publishes its own rows (a relay would read every IVR's), and the
        # database numbers the tickets: no relay, no share of the numbering.
        relayed = options.relay and options.shared_db is None
        ledger: LedgerProcess | None = None
        if not options.ledger_running:
            ledger = await start_ledger(
                stack, config=self.config, db=ledger_db, workdir=self.workdir, source=source, root=options.settings.root
            )
        answers = AnswerLatency(
            bus=answers_bus(self.config, client_id=f"{source}-answers", root=options.settings.root),
            config=self.config,
            source=source,
        )
        stack.push_async_callback(answers.close)
        await answers.start()
        system = await build_system(
            world=self.world,
            workdir=self.workdir,
            source=source,
            broker=self.config,
            root=options.settings.root,
            own_ledger=False,
            relay=relayed,
            shard=options.shard if options.shared_db is None else (0, 1),
            store=options.settings.store,
            pepper=options.settings.pepper,
        )
        closing = _Once(system.close)
        stack.push_async_callback(closing)
        relay: RelayProcess | None = None
        if relayed:
            relay = RelayProcess(
                config=self.config,
                db=self.workdir / "ivr.db",
                instance=f"{source}-relay",
                root=options.settings.root,
                log_file=self.workdir / "relay.log",
                transient=True,
            )
            stack.push_async_callback(relay.stop)
            await relay.start()
        system.engine.observers += [self.key_latency, self.events]
        launcher = Launcher(
            engine=system.engine,
            planner=self.planner,
            call_prefix=source,
            start=START,
            realtime=options.realtime,
            clock=self.lateness,
            key_latency=self.key_latency,
        )

        indices, record = await self._calls(stack)
        t0 = time.perf_counter()
        report.started_at = time.time()
        ticker = asyncio.create_task(self._tick(on_progress, launcher, answers, t0)) if on_progress else None
        try:
            # The ledger and the relay are watched: one that dies (a full disk) would leave the run waiting.
            children = [child for child in (ledger, relay) if child is not None]
            driving = self._drive(system, launcher=launcher, answers=answers, indices=indices, t0=t0, source=source)
            deductible = await unless_one_ends(driving, children)
        finally:
            if ticker is not None:
                ticker.cancel()
        report.rss_mb = {
            "ivr": peak_rss_mb(),
            "ledger": vm_hwm_mb(ledger.pid) if ledger else None,
            "relay": vm_hwm_mb(relay.pid) if relay else None,
            "broker": vm_hwm_mb(listener_pid(self.config.host, self.config.port))
            if self.config.host == LOOPBACK
            else None,
        }
        await closing()
        if relay is not None:
            await relay.stop()
        if ledger is not None:
            await ledger.stop()
        if ledger is not None or options.ledger_db is not None:
            verdict = await verify_ledger(ledger_db, directory=options.shared_db or self.workdir / "ivr.db")
            report.verify = verdict.for_report(own_ledger=ledger is not None)
        self._fill(launcher, deductible, answers)
        await record(launcher.signatures)
        return report

    async def _calls(
        self, stack: contextlib.AsyncExitStack
    ) -> tuple[Iterable[int] | AsyncIterable[int], Callable[[Mapping[int, tuple[str, str]]], Awaitable[None]]]:
        """The call indices this run makes, and how it leaves their signatures for the run's digests.

        Every call alone; a worker's share, from the call file or (on PostgreSQL) from the database
        its run shares, as `run_workers` dealt them.
        """
        options = self.options
        if options.calls_from is not None:
            calls = CallFile.open(options.calls_from)
            stack.callback(calls.close)

            async def into_file(signatures: Mapping[int, tuple[str, str]]) -> None:
                calls.record(signatures)

            return calls.indices(), into_file
        if options.shared_db is not None and options.shard[1] > 1:
            dealt = await DatabaseCalls.open(options.shared_db)
            stack.push_async_callback(dealt.close)
            return dealt.indices(), dealt.record

        async def nowhere(_: Mapping[int, tuple[str, str]]) -> None:
            """A run alone keeps its signatures in its report."""

        return range(options.calls), nowhere

    async def _drive(  # noqa: PLR0913 - the run's parts, as execute() has them
        self,
        system: System,
        *,
        launcher: Launcher,
        answers: AnswerLatency,
        indices: Iterable[int] | AsyncIterable[int],
        t0: float,
        source: str,
    ) -> list[str]:
        """Make the calls and wait for the ledger's answers; the run's deductible tickets."""
        report = self.report
        await launcher.run(indices, rate=self.options.rate, concurrency=self.concurrency)
        report.calls_seconds = round(time.perf_counter() - t0, 3)
        if not await _settle(system, answers):
            report.errors.append("the ledger did not answer every deductible ticket")
        report.total_seconds = round(time.perf_counter() - t0, 3)
        deductible = [t for s, _, t in await system.directory.deductible_tickets() if s == source]
        await answers.wait_answered(len(deductible), _ANSWER_WAIT)
        return deductible

    def _fill(self, launcher: Launcher, deductible: list[str], answers: AnswerLatency) -> None:
        report = self.report
        report.calls = launcher.started  # a worker's share: what it took from the call file
        report.completed, report.failed, report.peak_live = launcher.completed, launcher.failed, launcher.peak_live
        report.errors += launcher.errors
        report.kinds = dict(sorted(launcher.kinds.items()))
        report.outcomes = dict(sorted(launcher.outcomes.items()))
        report.events = self.events.events
        report.event_bytes = self.events.mean_bytes
        report.tickets = self.events.tickets
        report.deductible = len(deductible)
        report.deducted = answers.deducted
        report.rejected = answers.rejected
        report.key_to_prompt_ms = self.key_latency.samples.summary_ms(50, 95, 99)
        report.ticket_to_answer_ms = answers.samples.summary_ms(50, 95, 99)
        if self.options.realtime:
            report.timer_lateness_ms = self.lateness.samples.summary_ms(50, 99)
        report.plan_digest, report.outcome_digest = launcher.digests()

    async def _tick(
        self, on_progress: Callable[[Progress], None], launcher: Launcher, answers: AnswerLatency, t0: float
    ) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY)
            on_progress(
                Progress(
                    calls=self.options.calls,
                    started=launcher.started,
                    completed=launcher.completed + launcher.failed,
                    live=launcher.live,
                    seconds=time.perf_counter() - t0,
                    answered=answers.answered,
                )
            )


async def _settle(system: System, answers: AnswerLatency) -> bool:
    """Wait until the ledger has answered every ticket, for as long as answers keep coming."""
    last = -1
    for _ in range(_SETTLE_ROUNDS):
        try:
            await system.settle()
        except TimeoutError:
            if answers.answered == last:
                return False
            last = answers.answered
        else:
            return True
    return False


class _Once:
    """An async callable that runs its coroutine function once, however often it is called."""

    def __init__(self, func: Callable[[], Awaitable[None]]) -> None:
        self._func = func
        self._done = False

    async def __call__(self) -> None:
        if not self._done:
            self._done = True
            await self._func()
