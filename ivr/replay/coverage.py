"""Which parts of the flow and the rules a replayed suite reached, and which it never did.

Every item is derived from the tables the IVR runs on, never listed by hand: the states and
transition rows of `ivr.states.flow`, the outcomes the rule functions can reach
(`ivr.replay.outcomes`), and the counters the rows name (``count_failure`` at each input state,
``count_attempt`` at authorization) up to `MAX_FAILURES` and `MAX_ATTEMPTS`. A call reports what
it reached through ``Call.fired``, the rows it took, internal ones included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ivr.auth.attempts import MAX_ATTEMPTS
from ivr.replay.outcomes import outcome_of, rule_outcomes
from ivr.states.call import MAX_FAILURES
from ivr.states.diagram import row_label, row_sources
from ivr.states.flow import STATES, TRANSITIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from ivr.states.call import Call

__all__ = [
    "ATTEMPT_STATE",
    "CATEGORIES",
    "FAILURE_TRIGGERS",
    "Category",
    "Coverage",
    "attempt_item",
    "counter_item",
    "measure",
    "transition_label",
    "write_json",
]

#: The four kinds of item, in the order they are reported.
CATEGORIES: Final = ("states", "transitions", "outcomes", "counters")


def _callbacks(row: Mapping[str, Any]) -> list[str]:
    before = row.get("before") or []
    return [before] if isinstance(before, str) else list(before)


#: Triggers that count a failure at a prompt (the rows whose callback is ``count_failure``).
FAILURE_TRIGGERS: Final = tuple(dict.fromkeys(r["trigger"] for r in TRANSITIONS if "count_failure" in _callbacks(r)))
_INPUT_STATES: Final = tuple(
    dict.fromkeys(s for r in TRANSITIONS if "count_failure" in _callbacks(r) for s in row_sources(r))
)
#: The state whose every entry is one authorization attempt (where ``count_attempt`` rows leave from).
ATTEMPT_STATE: Final = next(s for r in TRANSITIONS if "count_attempt" in _callbacks(r) for s in row_sources(r))


def transition_label(index: int) -> str:
    """Row ``index`` of the flow table as ``#12 grant [needs_new_ticket]: authorizing -> severity``."""
    row = TRANSITIONS[index]
    sources = row_sources(row)
    source = sources[0] if len(sources) == 1 else "{" + ",".join(sources) + "}"
    dest = row["dest"] or "(stays)"
    return f"#{index + 1} {row_label(row)}: {source} -> {dest}"


def counter_item(state: str, trigger: str, count: int) -> str:
    """``code_entry no_match 2``: the second failure in a row at a prompt, this one a no-match."""
    return f"{state} {trigger} {count}"


def attempt_item(count: int) -> str:
    """``authorization attempt 3``."""
    return f"authorization attempt {count}"


def _rows() -> dict[tuple[str, str, str | None], str]:
    """(trigger, source, dest) -> the row's label.

    Rows for one trigger and source are tried in order and differ in destination, so the triple a
    call fired names exactly one row (the first, should two ever share it).
    """
    rows: dict[tuple[str, str, str | None], str] = {}
    for index, row in enumerate(TRANSITIONS):
        for source in row_sources(row):
            rows.setdefault((row["trigger"], source, row["dest"]), transition_label(index))
    return rows


_ROWS: Final = _rows()

_UNIVERSE: Final[dict[str, tuple[str, ...]]] = {
    "states": tuple(STATES),
    "transitions": tuple(transition_label(i) for i in range(len(TRANSITIONS))),
    "outcomes": tuple(o.label for o in rule_outcomes()),
    "counters": (
        *(
            counter_item(state, trigger, n)
            for state in _INPUT_STATES
            for trigger in FAILURE_TRIGGERS
            for n in range(1, MAX_FAILURES + 1)
        ),
        *(attempt_item(n) for n in range(1, MAX_ATTEMPTS + 1)),
    ),
}


@dataclass(frozen=True, slots=True)
class Category:
    """One kind of item: every item there is, in table order, and those reached."""

    items: tuple[str, ...]
    covered: frozenset[str]

    @property
    def missing(self) -> list[str]:
        """The items no call reached, in table order."""
        return [i for i in self.items if i not in self.covered]

    def to_json(self) -> dict[str, Any]:
        """``{"covered": n, "total": n, "missing": [...]}``."""
        return {"covered": len(self.items) - len(self.missing), "total": len(self.items), "missing": self.missing}


@dataclass(slots=True)
class Coverage:
    """What a set of calls reached, by category, and the arrows of the diagram they walked."""

    reached: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CATEGORIES})
    walked: set[tuple[str, str]] = field(default_factory=set)

    def add(self, call: Call) -> None:
        """Count what one call reached."""
        self.reached["states"].update(call.path)
        self.reached["outcomes"].update(outcome_of(d).label for d in call.decisions)
        failures = attempts = 0
        for trigger, source, dest in call.fired:
            self.reached["transitions"].add(_ROWS[trigger, source, dest])
            if trigger in FAILURE_TRIGGERS:
                failures += 1
                self.reached["counters"].add(counter_item(source, trigger, failures))
            if dest is not None:
                failures = 0
                self.walked.add((source, dest))
            if dest == ATTEMPT_STATE:
                attempts += 1
                self.reached["counters"].add(attempt_item(attempts))

    def category(self, name: str) -> Category:
        """One category: its universe and what was reached of it."""
        items = _UNIVERSE[name]
        return Category(items, frozenset(self.reached[name] & set(items)))

    def to_json(self) -> dict[str, Any]:
        """The four categories as ``--coverage-json`` writes them."""
        return {name: self.category(name).to_json() for name in CATEGORIES}

    def text(self) -> str:
        """The figures, then every item not reached."""
        figures = ", ".join(f"{n} {self.category(n).to_json()['covered']}/{len(_UNIVERSE[n])}" for n in CATEGORIES)
        lines = [f"coverage: {figures}"]
        for name in CATEGORIES:
            missing = self.category(name).missing
            if missing:
                lines.append(f"never reached ({name}):")
                lines.extend(f"  - {item}" for item in missing)
        return "\n".join(lines)


def measure(calls: Iterable[Call]) -> Coverage:
    """The coverage of ``calls``."""
    coverage = Coverage()
    for call in calls:
        coverage.add(call)
    return coverage


def write_json(coverage: Coverage, path: Path) -> None:
    """Write ``--coverage-json``: the four categories, each covered, total and missing."""
    path.write_text(json.dumps(coverage.to_json(), indent=2) + "\n", encoding="utf-8")
