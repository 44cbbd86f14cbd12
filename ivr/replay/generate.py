"""Scenarios written for what a suite never reaches, from the flow tables and a fixture world.

Candidates are built, not recorded: the keys come from the menus of ``STATES`` (walked on a
`Call` through the shared machine, so conditions such as ``is_business`` hold as in a real call),
the entries from the fixture world, and each expectation from the rules themselves
(`ivr.auth.rules` decides a code, key or ticket at the scenario's instant; `ivr.auth.routing`
gives queue and priority). Replaying the candidates only picks the few that reach what is
missing; a candidate whose run disagrees with its expectation is reported, never rewritten.
"""

from __future__ import annotations

import tempfile
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from ivr import worlds
from ivr.auth import lockout, rules
from ivr.auth.attempts import MAX_ATTEMPTS
from ivr.auth.decisions import Decision, Reason, Rule
from ivr.auth.model import CallerKind, Method, OwnedTicket, Purpose, Severity, Standing
from ivr.auth.routing import english_only, priority, queue_for
from ivr.callers import KEYS
from ivr.directory.fixtures import US_EASTERN
from ivr.engine import NO_INPUT_TIMEOUT
from ivr.replay.coverage import FAILURE_TRIGGERS, measure
from ivr.replay.runner import replay
from ivr.states.call import MAX_FAILURES, Call
from ivr.states.diagram import row_sources
from ivr.states.flow import FLOW, STATES, TRANSITIONS, Kind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ivr.auth.model import Contract
    from ivr.directory.fixtures import World

__all__ = ["Candidate", "Plan", "candidates", "plan", "write_candidates"]

#: Instants the candidates are placed at: a Tuesday morning, inside every standard contract's
#: hours, and a Saturday morning, outside them (and outside weekday office hours, for R8's notice).
INSTANTS: Final = (
    datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 11, 21, 10, 0, tzinfo=timezone(timedelta(hours=-5))),
)
CALLER: Final = "+15550900001"
_SEVERITY_KEY: Final = "2"  # severity B
_FINAL: Final = frozenset(n for n, s in STATES.items() if s.kind is Kind.FINAL)


@dataclass(slots=True)
class Candidate:
    """A scenario to write: its file name, its text as data, and whether its expectations held."""

    name: str
    doc: dict[str, Any]
    disagreement: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Spot:
    """An input state reached by pressing ``steps`` from the first prompt, and the call there."""

    state: str
    kind: CallerKind | None
    purpose: Purpose | None
    method: Method | None
    steps: tuple[Any, ...]
    triggers: tuple[tuple[str, dict[str, Any]], ...]  # (trigger, its arguments) fired to get here


def _model(triggers: tuple[tuple[str, dict[str, Any]], ...]) -> Call:
    """A call at rest after ``triggers``, fired through the shared machine as the engine fires them."""
    call = Call(id="plan", caller=CALLER, started_at=INSTANTS[0])
    for trigger, arguments in triggers:
        FLOW.events[trigger].trigger(call, **arguments)
        _passes(call)
    return call


def _passes(call: Call) -> Call:
    """Through the action states a call leaves on its own: those whose first row needs no facts (``clear``)."""
    while STATES[call.state].kind is Kind.ACTION:
        first = next(r for r in TRANSITIONS if call.state in row_sources(r))
        if first.get("before") or first.get("conditions") or not FLOW.events[first["trigger"]].trigger(call):
            break
    return call


def _spots() -> list[_Spot]:
    """Every input state the menus reach (each caller kind, purpose and method), breadth first."""
    spots: list[_Spot] = []
    seen: set[tuple[str, Any, Any, Any]] = set()
    queue: deque[tuple[tuple[Any, ...], tuple[tuple[str, dict[str, Any]], ...]]] = deque([((), ())])
    while queue:
        steps, triggers = queue.popleft()
        call = _model(triggers)
        spec = STATES[call.state]
        key = (call.state, call.kind, call.purpose, call.method)
        if spec.kind not in (Kind.MENU, Kind.DIGITS) or key in seen:
            continue
        seen.add(key)
        spots.append(_Spot(call.state, call.kind, call.purpose, call.method, steps, triggers))
        if spec.kind is Kind.MENU:
            for press, trigger in spec.options.items():
                trial = _model(triggers)
                if FLOW.events[trigger].trigger(trial, key=press):
                    queue.append(((*steps, {"press": press}), (*triggers, (trigger, {"key": press}))))
    return spots


def _prompt(spot: _Spot) -> str | None:
    template = STATES[spot.state].prompt
    return None if template is None else template.format(kind=spot.kind)


def _failure_step(state: str, trigger: str) -> tuple[Any, str]:
    """The step that makes ``trigger`` (no_input, no_match) at ``state``, and the prompt that says so."""
    if trigger == "no_input":
        return {"silence": NO_INPUT_TIMEOUT}, "no_input"
    if STATES[state].kind is Kind.DIGITS:
        return {"press": "#"}, "wrong_length"  # an empty entry: the wrong number of digits
    stray = min(KEYS - set(STATES[state].options) - {"*", "#"})
    return {"press": stray}, "no_match"


def _doc(name: str, at: datetime, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "at": at.isoformat(), "calls": calls}


def _call(steps: list[Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {"caller": CALLER, "steps": steps, "expect": expect}


def _input_candidates(spot: _Spot) -> list[Candidate]:
    """At one input state: a hang-up, a ``*`` replay, and 1-3 failures in a row of each kind."""
    state, at, prompt = spot.state, INSTANTS[0], _prompt(spot)
    steps = list(spot.steps)
    out = [
        Candidate(
            f"{state}_hangup",
            _doc(
                f"a hang-up at {state} ends the call there, nothing created",
                at,
                [
                    _call(
                        [*steps, "hangup"],
                        {
                            "outcome": "abandoned",
                            "rule": str(Rule.HANGUP),
                            "states": [state, "abandoned"],
                            "absent": {"events": ["ticket.created"]},
                            "deducted": {},
                        },
                    )
                ],
            ),
        ),
        Candidate(
            f"{state}_star_replays",
            _doc(
                f"* at {state} replays its prompt and is no failure",
                at,
                [_call([*steps, {"press": "*"}, "hangup"], {"outcome": "abandoned", "prompts": [prompt, prompt]})],
            ),
        ),
    ]
    for trigger in FAILURE_TRIGGERS:
        step, heard = _failure_step(state, trigger)
        for count in range(1, MAX_FAILURES + 1):
            last = count == MAX_FAILURES
            expect: dict[str, Any] = {"prompts": [p for _ in range(count) for p in (prompt, heard)]}
            if last:
                expect |= {
                    "outcome": "fallback",
                    "rule": str(Rule.INPUT),
                    "reason": heard,
                    "states": [state, "fallback"],
                }
            else:
                expect |= {"outcome": "abandoned", "rule": str(Rule.HANGUP)}
            what = "goes to the fallback" if last else "replays the prompt"
            out.append(
                Candidate(
                    f"{state}_{trigger}_{count}",
                    _doc(
                        f"{count} x {trigger} in a row at {state} {what}",
                        at,
                        [_call([*steps, *([step] * count), *([] if last else ["hangup"])], expect)],
                    ),
                )
            )
    return out


def _option_candidates(spot: _Spot) -> list[Candidate]:
    """Every key of a menu whose row's conditions hold for this call: the call moves on."""
    out = []
    spec = STATES[spot.state]
    for press, trigger in spec.options.items():
        call = _model(spot.triggers)
        source = call.state
        if not FLOW.events[trigger].trigger(call, key=press):
            continue
        dest = call.path[-1]
        expect: dict[str, Any] = {"states": [source, dest]}
        if dest in _FINAL:
            # The one final state a menu reaches is sales, which needs no authorization (R1).
            expect |= {"outcome": dest, "rule": str(Rule.R1)}
        who = "".join(f"_{part}" for part in (spot.kind, spot.purpose) if part)
        out.append(
            Candidate(
                f"{source}{who}_{press}_{trigger}",
                _doc(
                    f"{press} at {source} ({trigger}) goes to {dest}",
                    INSTANTS[0],
                    [_call([*spot.steps, {"press": press}, "hangup"], expect)],
                ),
            )
        )
    return out


def _lookup(world: World, method: Method, digits: str, spot: _Spot, at: datetime) -> tuple[Decision, Contract | None]:
    """What R2-R6 decide for ``digits`` entered by this caller at ``at`` (a fresh ledger: opening balances)."""
    today = at.astimezone(US_EASTERN).date()
    if method is Method.TICKET:
        assert spot.purpose is not None  # noqa: S101 - chosen before any entry
        found = _owned_ticket(world, digits)
        decision = rules.authorize_ticket(digits, found, purpose=spot.purpose, today=today)
        return decision, found.contract(decision.contract_id) if found else None
    if method is Method.SUPPORT_CODE:
        code = world.support_codes.get(digits)
        contract = world.contracts.get(code.contract_id) if code else None
        balance = contract.incidents if contract else None
        return rules.authorize_code(digits, code, contract, balance, today=today), contract
    key = world.license_keys.get(digits)
    contract = world.contracts.get(key.contract_id) if key else None
    balance = contract.incidents if contract else None
    return rules.authorize_key(digits, key, contract, balance, today=today), contract


def _owned_ticket(world: World, digits: str) -> OwnedTicket | None:
    """The ticket as the directory gives it to R2 and R3: its owner's kind and contracts, at opening balances."""
    ticket = world.tickets.get(digits)
    if ticket is None or ticket.contract_id not in world.contracts:
        return None
    standings = [
        Standing(contract=c, balance=c.incidents)
        for c in world.contracts.values()
        if c.customer_id == ticket.customer_id
    ]
    own = next(s for s in standings if s.contract.id == ticket.contract_id)
    return OwnedTicket(
        ticket=ticket,
        owner_kind=world.customers[ticket.customer_id].kind,
        own=own,
        others=tuple(s for s in standings if s is not own),
    )


def _entries(world: World, method: Method) -> list[str]:
    """The world's entries for a method, and one it does not have (for a refusal)."""
    known: dict[Method, Mapping[str, Any]] = {
        Method.TICKET: world.tickets,
        Method.SUPPORT_CODE: world.support_codes,
        Method.LICENSE_KEY: world.license_keys,
    }
    entries = sorted(known[method])
    width = rules.DIGITS[method]
    unknown = next(str(n).zfill(width) for n in range(10**width - 1, 0, -1) if str(n).zfill(width) not in known[method])
    return [*entries, unknown]


def _authorization(world: World, spot: _Spot, digits: str, at: datetime) -> tuple[list[Any], Decision, dict[str, Any]]:
    """The steps after the entry prompt, what R2-R10 imply for them, and the lookup's decision."""
    assert spot.method is not None  # noqa: S101 - an entry state
    decision, contract = _lookup(world, spot.method, digits, spot, at)
    steps: list[Any] = [{"press": f"{digits}#"}]
    verdict = {"rule": str(decision.rule), "granted": decision.granted}
    if not decision.granted:
        verdict["reason"] = str(decision.reason)
        steps.append("hangup")
        return (
            steps,
            decision,
            {
                "outcome": "abandoned",
                "prompts": [f"denied_{decision.reason}"],
                "decisions": [verdict],
                "absent": {"events": ["auth.granted"]},
                "deducted": {},
            },
        )
    assert contract is not None  # noqa: S101 - a grant names its contract
    hours = rules.check_hours(decision, contract, at)
    if not hours.granted:
        return (
            steps,
            decision,
            {
                "outcome": "fallback",
                "reason": str(hours.reason),
                "rule": str(hours.rule),
                "decisions": [verdict, {"rule": str(hours.rule), "granted": False, "reason": str(hours.reason)}],
                "absent": {"events": ["ticket.created"]},
            },
        )
    notice = ["english_notice"] if english_only(contract.plan, at) else []
    assert spot.kind is not None  # noqa: S101 - chosen before any entry
    assert spot.purpose is not None  # noqa: S101 - chosen before any entry
    expect: dict[str, Any] = {"outcome": "routed", "rule": str(decision.rule), "decisions": [verdict]}
    expect["queue"] = queue_for(spot.kind, spot.purpose)
    if decision.ticket_id is None:  # a new ticket (R4, R5): severity, read back (R10), deducted if limited (R7)
        steps.append({"press": _SEVERITY_KEY})
        expect["priority"] = priority(Severity.B, contract.plan)
        expect["states"] = ["authorizing", "severity", "creating_ticket", "case_number", *notice, "routed"]
        expect["events"] = [{"type": "ticket.created", "data": {"deduct": decision.deduct}}]
        expect["deducted"] = {contract.id: 1} if decision.deduct else {}
    else:  # joins the ticket (R2, R3, R6)
        expect["ticket"] = decision.ticket_id
        expect["priority"] = priority(world.tickets[decision.ticket_id].severity, contract.plan)
        expect["states"] = ["authorizing", *notice, "routed"]
        expect["absent"] = {"events": ["ticket.created"]}
        expect["deducted"] = {}
    return steps, decision, expect


def _entry_candidates(world: World, spot: _Spot) -> list[Candidate]:
    """Every entry of the world for this prompt, at each instant, with what the rules decide."""
    assert spot.method is not None  # noqa: S101 - an entry state
    out = []
    for number, digits in enumerate(_entries(world, spot.method), start=1):
        for at in INSTANTS:
            steps, _, expect = _authorization(world, spot, digits, at)
            name = f"{spot.state}_{spot.kind}_{spot.purpose}_{number}_{at:%a}".lower()
            out.append(
                Candidate(
                    name,
                    _doc(
                        f"a {spot.kind} {spot.purpose} call enters a {spot.method} at {at:%A %H:%M}",
                        at,
                        [_call([*spot.steps, *steps], expect)],
                    ),
                )
            )
    return out


def _refusals(world: World, spot: _Spot) -> list[Candidate]:
    """Refused entries: every attempt used (attempts), and five across calls (lockout, then locked)."""
    assert spot.method is not None  # noqa: S101 - an entry state
    unknown = _entries(world, spot.method)[-1]
    method_key = spot.steps[-1]
    again = [method_key, {"press": f"{unknown}#"}]
    refused = [*spot.steps, {"press": f"{unknown}#"}]
    exhausted = {"outcome": "fallback", "reason": str(Reason.ATTEMPTS_EXHAUSTED), "rule": str(Rule.ATTEMPTS)}
    locked = {"outcome": "fallback", "reason": str(Reason.LOCKED_OUT), "rule": str(Rule.LOCKOUT)}
    per_call = MAX_ATTEMPTS
    # The first call uses every attempt; the second refuses the rest of the lockout's count.
    rest = lockout.MAX_FAILURES - per_call
    return [
        Candidate(
            f"{spot.state}_attempts_exhausted",
            _doc(
                f"{per_call} refused entries use every attempt of the call",
                INSTANTS[0],
                [_call([*refused, *again * (per_call - 1)], exhausted)],
            ),
        ),
        Candidate(
            f"{spot.state}_lockout",
            _doc(
                f"{lockout.MAX_FAILURES} refusals from one number lock it; its next call is refused at once",
                INSTANTS[0],
                [
                    _call([*refused, *again * (per_call - 1)], exhausted),
                    _call([*refused, *again * (rest - 1)], {**locked, "events": ["auth.locked_out"]}),
                    _call(list(spot.steps), {**locked, "states": ["lockout_check", "fallback"]}),
                ],
            ),
        ),
    ]


def candidates(world: World) -> list[Candidate]:
    """Every candidate scenario for ``world``: each input state, menu key, entry and refusal."""
    spots = _spots()
    out: list[Candidate] = []
    by_state: dict[str, _Spot] = {}
    for spot in spots:
        by_state.setdefault(spot.state, spot)
        if STATES[spot.state].kind is Kind.MENU:
            out.extend(_option_candidates(spot))
        # Only a ticket's decision depends on the call's purpose (R3); codes and keys are tried once per kind.
        if spot.method is Method.TICKET or (spot.method is not None and spot.purpose is Purpose.TECHNICAL):
            out.extend(_entry_candidates(world, spot))
    severity = _severity(world, spots)
    if severity is not None:
        by_state.setdefault(severity.state, severity)
        out.extend(_option_candidates(severity))
    for spot in by_state.values():
        out.extend(_input_candidates(spot))
    code = next(s for s in spots if s.method is Method.SUPPORT_CODE)
    out.extend(_refusals(world, code))
    return out


def _severity(world: World, spots: list[_Spot]) -> _Spot | None:
    """The severity menu, reached by the first entry of the world that opens a new ticket in hours."""
    for spot in spots:
        if spot.method is None:
            continue
        for digits in _entries(world, spot.method):
            steps, decision, expect = _authorization(world, spot, digits, INSTANTS[0])
            if "severity" in expect.get("states", ()):
                granted = (*spot.triggers, ("submit", {}), ("grant", {"decision": decision}))
                return _Spot("severity", spot.kind, spot.purpose, spot.method, (*spot.steps, steps[0]), granted)
    return None


class _Dumper(yaml.SafeDumper):
    """Plain YAML a person would write: no anchors, and digits and keys always quoted (never numbers)."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ANN401, ARG002 - the base signature
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    quoted = any(ch.isdigit() or ch in "*#+" for ch in value)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if quoted else None)


_Dumper.add_representer(str, _text)


def write_candidates(chosen: list[Candidate], folder: Path, fixture: Path) -> list[Path]:
    """Write each chosen candidate as ``folder/NAME.yaml`` naming ``fixture`` (a packaged world by name)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    relative = worlds.reference(fixture, folder)
    for candidate in chosen:
        doc = {"name": candidate.doc["name"], "at": candidate.doc["at"], "fixture": relative, **candidate.doc}
        path = folder / f"{candidate.name}.yaml"
        header = "# Generated by `ivr scenarios generate` from the flow tables and the fixture world.\n"
        text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=None)
        path.write_text(header + text, encoding="utf-8")
        written.append(path)
    return written


@dataclass(slots=True)
class Plan:
    """What ``generate`` chose: the candidates to write and what each reaches, what none reaches, and disagreements."""

    chosen: list[tuple[Candidate, list[str]]]
    unreached: list[str]
    disagreements: list[Candidate]


async def plan(world: World, fixture: Path, targets: Iterable[str]) -> Plan:
    """Replay every candidate in-process and pick, greedily, few that reach every target they can.

    ``targets`` are ``category: item`` strings (``transitions: #5 ...``, ``counters: ...``).
    """
    pool = candidates(world)
    with tempfile.TemporaryDirectory(prefix="ivr-generate-") as tmp:
        paths = write_candidates(pool, Path(tmp), fixture)
        results, _ = await replay(paths)
    by_name = {c.name: c for c in pool}
    reach: dict[str, set[str]] = {}
    disagreements = []
    for result in results:
        candidate = by_name[result.scenario.path.stem]
        if not result.passed:
            candidate.disagreement = [f for c in result.calls for f in c.failures]
            candidate.disagreement += [result.error] if result.error else []
            disagreements.append(candidate)
            continue
        measured = measure(c.record.call for c in result.calls)
        reach[candidate.name] = {f"{n}: {i}" for n in ("transitions", "counters") for i in measured.category(n).covered}
    left = list(dict.fromkeys(targets))
    chosen = []
    while True:
        best = max(reach, key=lambda name: len(reach[name].intersection(left)), default=None)
        if best is None or not reach[best].intersection(left):
            break
        chosen.append((by_name[best], [t for t in left if t in reach[best]]))
        left = [t for t in left if t not in reach[best]]
    return Plan(chosen, left, disagreements)
