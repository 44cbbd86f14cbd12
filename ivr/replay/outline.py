"""Scenario outlines: one file, an ``examples:`` table, and a run of the scenario per row.

Each row's values replace every ``${name}`` in the file's text before it is read, so a row is
checked exactly as a hand-written file would be, and an error in it names the file and line.
A file without ``examples:`` is one scenario, as before.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from ivr.replay.scenario import scenario_from
from ivr.yamlsrc import LinedDict, LinedList, SourceError, line_of, load_text, read_source

if TYPE_CHECKING:
    from pathlib import Path

    from ivr.replay.scenario import Scenario

__all__ = ["load_scenarios", "scenarios_from_text"]

_KEY: Final = "examples"
_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _rows(path: Path, doc: LinedDict, used: set[str]) -> list[dict[str, str]]:
    """The examples table, each row checked: a mapping of names the file uses to text values."""
    raw = doc[_KEY]
    if not isinstance(raw, LinedList) or not raw:
        raise SourceError(path, line_of(doc, _KEY), "'examples' must be a non-empty list of mappings")
    rows = []
    for i, row in enumerate(raw):
        what = f"examples[{i + 1}]"
        if not isinstance(row, LinedDict):
            raise SourceError(path, line_of(raw, i), f"{what} must be a mapping of names to values")
        values: dict[str, str] = {}
        for name, value in row.items():
            if str(name) not in used:
                raise SourceError(path, line_of(row, name), f"{what}: '{name}' is not used: no ${{{name}}} in the file")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise SourceError(path, line_of(row, name), f"{what}: '{name}' must be text or a number")
            values[str(name)] = str(value)
        rows.append(values)
    return rows


def _fill(path: Path, text: str, row: dict[str, str], number: int) -> str:
    """``text`` with each ``${name}`` replaced by the row's value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in row:
            line = text.count("\n", 0, match.start()) + 1
            raise SourceError(path, line, f"examples[{number}] has no value for ${{{name}}}")
        return row[name]

    return _VARIABLE.sub(value, text)


def load_scenarios(path: Path) -> list[Scenario]:
    """The scenario in ``path``, or one per row of its ``examples`` (``example`` = the row, from 1)."""
    return scenarios_from_text(path, read_source(path))


def scenarios_from_text(path: Path, text: str) -> list[Scenario]:
    """:func:`load_scenarios` on ``text`` (the file ``path``'s, read already: the console gets it from a page)."""
    # Read once with each ``${name}`` as its bare name, so a placeholder where YAML allows no
    # ``$`` (a flow mapping's key) still parses, and lines stay where they are.
    doc: Any = load_text(path, _VARIABLE.sub(lambda m: m.group(1), text))
    if not isinstance(doc, LinedDict) or _KEY not in doc:
        return [scenario_from(path, load_text(path, text) if _VARIABLE.search(text) else doc)]
    rows = _rows(path, doc, {m.group(1) for m in _VARIABLE.finditer(text)})
    scenarios = []
    for number, row in enumerate(rows, start=1):
        filled = load_text(path, _fill(path, text, row, number))
        if isinstance(filled, LinedDict):
            filled.pop(_KEY, None)
        scenarios.append(replace(scenario_from(path, filled), example=number))
    return scenarios
