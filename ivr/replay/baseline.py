"""Baselines: what every call of a suite did, saved, and the calls that now end differently.

``--record`` keeps, per call, how it ended and how it got there; ``--baseline`` replays and names
each call whose ending or route changed, so a rule or flow change shows its blast radius before
release, even for scenarios that state no expectations. Calls are keyed by the scenario's path
relative to the folder it was found in, so a copy of the suite elsewhere compares with the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ivr.replay.outcomes import outcome_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ivr.replay.runner import ScenarioResult
    from ivr.replay.scenario import Scenario

__all__ = ["FIELDS", "BaselineError", "Change", "changes_text", "compare", "read_baseline", "record", "write_baseline"]

#: What is compared, in the order changes are reported.
FIELDS: Final = ("outcome", "reason", "rule", "path", "prompts", "decisions", "events")
_VERSION: Final = 1

Key = tuple[str, int]


class BaselineError(Exception):
    """A baseline file that cannot be read or is not one."""


@dataclass(frozen=True, slots=True)
class Change:
    """One call that ends differently from its baseline: what was, and what is now."""

    scenario: str
    call: int
    changes: tuple[str, ...]


def scenario_key(scenario: Scenario, roots: Sequence[Path]) -> str:
    """The scenario's path relative to the folder given that holds it (its name if given as a file)."""
    path = scenario.path.resolve()
    relative = next(
        (path.relative_to(r.resolve()).as_posix() for r in roots if r.is_dir() and path.is_relative_to(r.resolve())),
        path.name,
    )
    return relative if scenario.example is None else f"{relative}[{scenario.example}]"


def record(results: Sequence[ScenarioResult], roots: Sequence[Path]) -> dict[Key, dict[str, Any]]:
    """Every call of ``results``: how it ended (outcome, reason, rule) and how it got there."""
    calls: dict[Key, dict[str, Any]] = {}
    for result in results:
        key = scenario_key(result.scenario, roots)
        for number, call in enumerate(result.calls, start=1):
            c = call.record.call
            calls[key, number] = {
                "outcome": c.outcome,
                "reason": None if c.reason is None else str(c.reason),
                "rule": None if c.rule is None else str(c.rule),
                "path": list(c.path),
                "prompts": list(c.prompts),
                "decisions": [outcome_of(d).label for d in c.decisions],
                "events": [e.type for e in call.record.events],
            }
    return calls


def write_baseline(path: Path, calls: dict[Key, dict[str, Any]]) -> None:
    """Save ``calls`` as JSON, one entry per call in the suite's order."""
    entries = [{"scenario": s, "call": n, **fields} for (s, n), fields in calls.items()]
    path.write_text(json.dumps({"version": _VERSION, "calls": entries}, indent=1) + "\n", encoding="utf-8")


def read_baseline(path: Path) -> dict[Key, dict[str, Any]]:
    """Load a file :func:`write_baseline` wrote; anything else is a :class:`BaselineError`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror}"
        raise BaselineError(msg) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: not a baseline (not JSON: {exc})"
        raise BaselineError(msg) from exc
    entries = doc.get("calls") if isinstance(doc, dict) and doc.get("version") == _VERSION else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("scenario"), str) and isinstance(e.get("call"), int) for e in entries
    ):
        msg = f"{path}: not a baseline written by `ivr replay --record` (version {_VERSION})"
        raise BaselineError(msg)
    return {(e["scenario"], e["call"]): {f: e.get(f) for f in FIELDS} for e in entries}


def _shown(value: Any) -> str:  # noqa: ANN401 - a field's value: text, None or a list of names
    if isinstance(value, list):
        return " > ".join(map(str, value)) or "(none)"
    return "-" if value is None else str(value)


def compare(baseline: dict[Key, dict[str, Any]], now: dict[Key, dict[str, Any]]) -> list[Change]:
    """Each call run now that differs from the baseline, or is not in it; in the suite's order.

    A baseline call whose scenario was not run is not a change (a subset of the suite may be
    replayed, from a sub-folder too); one whose scenario ran but no longer has that call is.
    """
    changes = []
    ran = set()
    for key, fields in now.items():
        scenario = _in_baseline(key[0], baseline)
        ran.add(scenario)
        before = baseline.get((scenario, key[1]))
        if before is None:
            changes.append(Change(*key, ("not in the baseline",)))
            continue
        diffs = tuple(
            f"{f}: was {_shown(before.get(f))}; now {_shown(fields[f])}" for f in FIELDS if before.get(f) != fields[f]
        )
        if diffs:
            changes.append(Change(*key, diffs))
    run = {(_in_baseline(scenario, baseline), call) for scenario, call in now}
    changes.extend(
        Change(scenario, call, ("no longer run",))
        for scenario, call in baseline
        if scenario in ran and (scenario, call) not in run
    )
    return changes


def _in_baseline(scenario: str, baseline: dict[Key, dict[str, Any]]) -> str:
    """The baseline's name for ``scenario``: the same, or the one path ending in it (a sub-folder replayed)."""
    names = {name for name, _ in baseline}
    if scenario in names:
        return scenario
    ending = [name for name in names if name.endswith("/" + scenario)]
    return ending[0] if len(ending) == 1 else scenario


def changes_text(changes: Sequence[Change], source: Path) -> str:
    """The calls that changed, each with what changed; or that none did."""
    if not changes:
        return f"baseline {source}: every call ends as before"
    lines = [f"baseline {source}: {len(changes)} call(s) end differently"]
    for change in changes:
        lines.append(f"CHANGED {change.scenario} call {change.call}")
        lines.extend(f"  - {c}" for c in change.changes)
    return "\n".join(lines)
