"""Run scenarios and compare what happened with what each call expected."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.bootstrap import System, build_system
from ivr.callers import Press, ScriptedCaller, Step
from ivr.clock import VirtualClock
from ivr.directory.fixtures import World, load_world
from ivr.replay.expectations import check_absent, check_decisions, subsequence
from ivr.replay.outline import load_scenarios
from ivr.replay.scenario import GAP_SECONDS, CallSpec, Scenario, resolve_keys
from ivr.settings import Settings
from ivr.stores import scratch_schema
from ivr.yamlsrc import SourceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ivr.engine import CallRecord, Observer
    from ivr.ledger.storage import VerifyReport

#: Scenarios replayed at once.
CONCURRENT_SCENARIOS = 4

__all__ = ["CONCURRENT_SCENARIOS", "CallResult", "LedgerRow", "LoadFailure", "ScenarioResult", "replay", "run_scenario"]


@dataclass(slots=True)
class CallResult:
    """One call of a scenario: what it did, and every way it differed from its expectations."""

    spec: CallSpec
    record: CallRecord
    deducted: dict[str, int]
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A contract the ledger touched during a scenario."""

    contract: str
    opening: int | None
    deducted: int
    balance: int | None


@dataclass(slots=True)
class ScenarioResult:
    """One scenario's calls, its ledger at the end, or the error that stopped it."""

    scenario: Scenario
    calls: list[CallResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    verify: VerifyReport | None = None
    ledger: list[LedgerRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every call met its expectations, the ledger verified, and nothing went wrong."""
        verified = self.verify is None or self.verify.ok
        return self.error is None and verified and all(not c.failures for c in self.calls)


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A file that could not be read as a scenario."""

    path: Path
    error: SourceError


def check(spec: CallSpec, result: CallResult) -> list[str]:
    """Every difference between a call's expectations and what it did."""
    e, call = spec.expect, result.record.call
    failures: list[str] = []
    for name, want, got in (
        ("outcome", e.outcome, call.outcome),
        ("reason", e.reason, call.reason),
        ("rule", e.rule, call.rule),
        ("queue", e.queue, call.queue),
        ("priority", e.priority, call.priority),
        ("ticket", e.ticket, call.ticket_id),
    ):
        if want is not None and str(want) != str(got):
            failures.append(f"{name}: expected {want}, got {got}")
    for name, want_seq, got_seq, shown in (
        ("prompts", e.prompts, call.prompts, call.prompts),
        ("events", e.events, result.record.events, [ev.type for ev in result.record.events]),
        ("states", e.states, call.path, call.path),
    ):
        missing = subsequence(want_seq, got_seq)
        if missing is not None:
            wanted = [str(w) for w in want_seq]
            failures.append(f"{name}: expected {wanted} in order; '{missing}' missing from {list(shown)}")
    failures.extend(check_decisions(e.decisions, call.decisions))
    failures.extend(check_absent(e.absent, result.record))
    if e.deducted is not None:
        got_deducted = {k: v for k, v in result.deducted.items() if v}
        want_deducted = {k: v for k, v in e.deducted.items() if v}
        if got_deducted != want_deducted:
            failures.append(f"deducted: expected {want_deducted}, got {got_deducted}")
    return failures


async def run_scenario(
    scenario: Scenario,
    world: World,
    *,
    workdir: Path,
    settings: Settings | None = None,
    observers: Sequence[Observer] = (),
) -> ScenarioResult:
    """Run a scenario's calls in order on a fresh IVR and ledger; settle the ledger after each.

    Each run gets its own event ``source`` so that, on a shared broker, a scenario's IVR only
    takes the ledger's answers to its own tickets. ``observers`` watch the calls as they run
    (the trainer console plays a scenario back on its diagram so). ``settings`` name the broker
    (none: the ledger in process), the store and the pepper. On a PostgreSQL store it gets a schema
    of its own, dropped at the end, as it gets files of its own in ``workdir`` otherwise.
    """
    settings = settings or Settings()
    async with scratch_schema(settings.store, "replay") as schema:
        return await _run_scenario(
            scenario, world, workdir=workdir, settings=settings, observers=observers, schema=schema
        )


async def _run_scenario(  # noqa: PLR0913 - run_scenario's arguments, and the schema it made
    scenario: Scenario,
    world: World,
    *,
    workdir: Path,
    settings: Settings,
    observers: Sequence[Observer],
    schema: str | None = None,
) -> ScenarioResult:
    result = ScenarioResult(scenario)
    started = time.perf_counter()
    # Ids and the event source keep to plain characters: ``outline[2]`` runs as ``outline-2``.
    name = scenario.label.replace("[", "-").replace("]", "")
    source = f"replay-{uuid.uuid4().hex[:8]}-{name}"
    system = await build_system(
        world=world,
        workdir=workdir,
        source=source,
        broker=settings.broker,
        root=settings.root,
        store=settings.store,
        schema=schema,
        pepper=settings.pepper,
    )
    system.engine.observers.extend(observers)
    try:
        next_start = scenario.at
        tickets: list[str | None] = []
        for index, spec in enumerate(scenario.calls):
            clock = VirtualClock(start=spec.at or next_start)
            steps: list[Step] = [
                Press(resolve_keys(s.keys, tickets)) if isinstance(s, Press) else s for s in spec.steps
            ]
            assert system.ledger is not None  # noqa: S101 - replay always builds its own ledger
            before = await system.ledger.deducted()
            record = await system.engine.run_call(
                ScriptedCaller(steps, clock=clock),
                clock=clock,
                number=spec.caller,
                call_id=f"{name}-{index + 1}",
            )
            await system.settle()
            after = await system.ledger.deducted()
            deducted = {c: n - before.get(c, 0) for c, n in after.items() if n != before.get(c, 0)}
            call_result = CallResult(spec, record, deducted)
            call_result.failures = check(spec, call_result)
            result.calls.append(call_result)
            tickets.append(record.call.ticket_id if "creating_ticket" in record.call.path else None)
            next_start = clock.now() + timedelta(seconds=GAP_SECONDS)
        await _check_ledger(system, result)
    except LookupError as exc:
        result.error = str(exc)
    finally:
        await system.close()
        result.seconds = time.perf_counter() - started
    return result


async def _check_ledger(system: System, result: ScenarioResult) -> None:
    """`ivr ledger verify` on the scenario's ledger, with every deductible ticket the IVR created."""
    if system.ledger is None:
        return
    expected = [(source, ticket) for source, _, ticket in await system.directory.deductible_tickets()]
    result.verify = await system.ledger.verify(expected)
    deducted = await system.ledger.deducted()
    touched = {e.contract_id for e in await system.ledger.entries()}
    result.ledger = [
        LedgerRow(contract, opening, deducted.get(contract, 0), balance)
        for contract, (opening, balance) in (await system.ledger.balances()).items()
        if contract in touched
    ]


async def replay(
    files: Sequence[Path], *, settings: Settings | None = None
) -> tuple[list[ScenarioResult], list[LoadFailure]]:
    """Load and run ``files``; a file that cannot be read is reported and the others still run.

    With a broker in ``settings`` every event crosses it (publisher, ledger consumer, follower);
    without, the ledger is called in-process. With a PostgreSQL store each scenario runs in a
    schema of its own there; with an SQLite one (a folder), each scenario's files are kept in a
    numbered folder inside it; without, in a temporary folder.
    """
    settings = settings or Settings()
    store = settings.store
    loaded: list[tuple[int, Scenario]] = []
    failures: list[LoadFailure] = []
    worlds: dict[Path, World] = {}
    for path in files:
        try:
            scenarios = load_scenarios(path)
            for scenario in scenarios:
                if scenario.fixture not in worlds:
                    worlds[scenario.fixture] = load_world(scenario.fixture)
        except SourceError as exc:
            failures.append(LoadFailure(path, exc))
            continue
        loaded.extend((len(loaded) + i, scenario) for i, scenario in enumerate(scenarios))
    # Scenarios are independent (own files, own event source), and each spends most of its time
    # waiting on SQLite and the broker, so a few run at once; results keep the files' order.
    gate = asyncio.Semaphore(CONCURRENT_SCENARIOS)
    with contextlib.ExitStack() as stack:
        if store is not None and store.path is not None:
            tmp = store.path
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-replay-")))

        async def one(number: int, scenario: Scenario) -> ScenarioResult:
            workdir = tmp / str(number)
            workdir.mkdir()
            async with gate:
                world = worlds[scenario.fixture]
                return await run_scenario(scenario, world, workdir=workdir, settings=settings)

        results = await asyncio.gather(*(one(n, s) for n, s in loaded))
    return list(results), failures
