"""The persona mix: which kinds of call a load run makes, how often, and how callers pace their keys.

A mix is a small YAML file (the shipped default is ``ivr/load/mix.yaml``) of relative weights per
kind, so a run can lean on failures or on sales without code. It is checked like every hand-written
file here: a wrong kind or a negative weight is reported with its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Final

from ivr.yamlsrc import LinedDict, LinedList, SourceError, line_of, load_file

__all__ = ["DEFAULT_MIX", "CallKind", "Mix", "default_mix", "load_mix"]

#: The shipped mix, next to this module.
DEFAULT_MIX: Final = "mix.yaml"
_KEYS: Final = frozenset({"kinds", "think_seconds", "no_input_share"})


class CallKind(StrEnum):
    """The kinds of call a load run can make; each one exercises a branch of the flow."""

    SALES = "sales"
    TICKET = "ticket"
    SUPPORT_CODE = "support_code"
    LICENSE_KEY = "license_key"
    WRONG_CODE = "wrong_code"
    CLOSED_TICKET = "closed_ticket"
    UNKNOWN_TICKET = "unknown_ticket"
    WRONG_LENGTH = "wrong_length"
    SILENT = "silent"
    HANG_UP = "hang_up"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mix:
    """Relative weights per kind, and the pacing of keys (used in real time, virtual otherwise)."""

    weights: dict[CallKind, float]
    think_seconds: tuple[float, float] = (1.0, 3.0)
    no_input_share: float = 0.1

    def __post_init__(self) -> None:
        """Refuse a mix that cannot pick anything, or pacing that would fire the no-input timer."""
        if not any(w > 0 for w in self.weights.values()):
            msg = "a mix needs at least one kind with a weight above 0"
            raise ValueError(msg)
        low, high = self.think_seconds
        if not 0 <= low <= high < 5:  # noqa: PLR2004 - the engine's no-input timeout
            msg = f"think_seconds must be 0 <= low <= high < 5 (the no-input timeout), not {self.think_seconds}"
            raise ValueError(msg)
        if not 0 <= self.no_input_share <= 1:
            msg = f"no_input_share must be within 0-1, not {self.no_input_share}"
            raise ValueError(msg)

    @property
    def kinds(self) -> list[CallKind]:
        """The kinds with a weight above 0, in declaration order (the order picks are drawn in)."""
        return [k for k in CallKind if self.weights.get(k, 0) > 0]


def _number(path: Path, container: object, key: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SourceError(path, line_of(container, key), f"'{key}' must be a number >= 0, not {value!r}")
    return float(value)


def load_mix(path: Path) -> Mix:
    """Read and check a mix file."""
    doc = load_file(path)
    if not isinstance(doc, LinedDict):
        raise SourceError(path, 1, "a mix file is a mapping with 'kinds'")
    for key in doc:
        if key not in _KEYS:
            raise SourceError(path, line_of(doc, key), f"unknown key '{key}'; expected {', '.join(sorted(_KEYS))}")
    kinds = doc.get("kinds")
    if not isinstance(kinds, LinedDict) or not kinds:
        raise SourceError(path, line_of(doc, "kinds"), "'kinds' must map kinds of call to weights")
    weights: dict[CallKind, float] = {}
    for name, weight in kinds.items():
        try:
            kind = CallKind(name)
        except ValueError:
            known = ", ".join(k.value for k in CallKind)
            raise SourceError(path, line_of(kinds, name), f"unknown kind {name!r}; expected one of {known}") from None
        weights[kind] = _number(path, kinds, name, weight)
    think = doc.get("think_seconds", [1.0, 3.0])
    if not isinstance(think, LinedList) and think != [1.0, 3.0]:
        raise SourceError(path, line_of(doc, "think_seconds"), "'think_seconds' must be [low, high]")
    if len(think) != 2:  # noqa: PLR2004 - a range
        raise SourceError(path, line_of(doc, "think_seconds"), "'think_seconds' must be [low, high]")
    low, high = (_number(path, doc, "think_seconds", v) for v in think)
    share = _number(path, doc, "no_input_share", doc.get("no_input_share", 0.1))
    try:
        return Mix(weights=weights, think_seconds=(low, high), no_input_share=share)
    except ValueError as exc:
        raise SourceError(path, None, str(exc)) from None


def default_mix() -> Mix:
    """The mix shipped with the package."""
    with resources.as_file(resources.files("ivr.load") / DEFAULT_MIX) as path:
        return load_mix(Path(path))
