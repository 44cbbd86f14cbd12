"""YAML that remembers where each value came from, so a bad file is reported by file and line.

Scenario files and fixture worlds are written by hand; "line 14: unknown step 'pres'" saves the
telephony team a search. Mappings load as :class:`LinedDict` and sequences as :class:`LinedList`,
both plain containers that also carry the 1-based line of every key or item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["LinedDict", "LinedList", "SourceError", "line_of", "load_file", "load_text", "read_source"]


class SourceError(Exception):
    """A problem in a hand-written file, located by file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        """Name the file, the line (when known) and what is wrong."""
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


class LinedDict(dict[Any, Any]):
    """A mapping from YAML, with ``line`` (its own) and ``lines`` (each key's)."""

    line: int = 0

    def __init__(self) -> None:
        """An empty mapping; the loader fills it."""
        super().__init__()
        self.lines: dict[Any, int] = {}


class LinedList(list[Any]):
    """A sequence from YAML, with ``line`` (its own) and ``lines`` (each item's)."""

    line: int = 0

    def __init__(self) -> None:
        """An empty sequence; the loader fills it."""
        super().__init__()
        self.lines: list[int] = []


def line_of(container: object, key: object = None) -> int | None:
    """The line of ``key`` in ``container`` (or of the container itself), when known."""
    if isinstance(container, LinedDict):
        return container.lines.get(key, container.line) if key is not None else container.line
    if isinstance(container, LinedList):
        if isinstance(key, int) and 0 <= key < len(container.lines):
            return container.lines[key]
        return container.line
    return None


class _Loader(yaml.SafeLoader):
    """SafeLoader building line-aware containers; duplicate keys are errors, not silent overwrites."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LinedDict:
    loader.flatten_mapping(node)
    out = LinedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r}",
                key_node.start_mark,
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LinedList:
    out = LinedList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_file(path: Path) -> Any:  # noqa: ANN401 - YAML is whatever the file holds
    """Parse ``path``; a syntax error or unreadable file becomes a :class:`SourceError`."""
    return load_text(path, read_source(path))


def read_source(path: Path) -> str:
    """The text of a hand-written file; an unreadable file becomes a :class:`SourceError`."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(path, None, f"cannot read: {exc.strerror}") from exc


def load_text(path: Path, text: str) -> Any:  # noqa: ANN401 - YAML is whatever the text holds
    """Parse ``text``, the contents of ``path`` (errors name it); a syntax error becomes a :class:`SourceError`."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SourceError(path, line, f"invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise SourceError(path, None, f"invalid YAML: {exc}") from exc
