"""YAML that remembers where each value came from, so a bad file is reported by file and line.

Scenario files and fixture worlds are written by hand; "line 14: unknown step 'pres'" saves the
telephony team a search. Mappings load as :class:`LinedDict` and sequences as :class:`LinedList`,
both plain containers that also carry the 1-based line of every key or item.

Whatever a file holds, reading it ends in a value or a :class:`SourceError`: a size cap, a nesting
cap and a located error for every value YAML cannot build (``2026-02-30``) keep a careless or
hostile file from becoming a traceback, a hang or a process out of memory.
"""

from __future__ import annotations

import reprlib
import stat
from pathlib import Path
from typing import Any, Final

import yaml

from ivr.secrets import scrub

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "UNQUOTED_DIGITS",
    "LinedDict",
    "LinedList",
    "SourceError",
    "line_of",
    "load_file",
    "load_text",
    "read_source",
    "shown",
]

#: The largest file read: 280 times the default world. PyYAML holds ~90 bytes per byte it parses.
MAX_BYTES: Final = 2 * 1024 * 1024
#: The deepest nesting of lists and mappings: a scenario needs 5; past ~1,000 PyYAML's recursion breaks.
MAX_DEPTH: Final = 32

#: Why digits (a code, a number) must be quoted: said wherever a loader finds them unquoted.
UNQUOTED_DIGITS: Final = "quote it: YAML reads unquoted digits as a number, which drops leading zeros"

_SHOWN: Final = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60


def shown(value: object) -> str:
    """``repr(value)`` cut short, for error messages: a value from a file may be a megabyte long."""
    return _SHOWN.repr(value)


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

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose as PyYAML does, refusing nesting past :data:`MAX_DEPTH` (its composer recurses)."""
        if self._depth >= MAX_DEPTH:
            self.check_event()  # makes the parser read the node's first event, where the error is
            mark = self.current_event.start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:  # noqa: ANN401, FBT002 - PyYAML's signature
        """Build a value as PyYAML does; one it cannot build is an error at its line, not a traceback."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # a date past its month's end, an offset past 24 h, a !!bool 'maybe'...
            what = f"cannot read {shown(node.value)} as {node.tag.rsplit(':', 1)[-1]}: {exc}"
            mark = node.start_mark  # the value may be a mistyped code: scrubbed like any text from a caller
            raise yaml.constructor.ConstructorError(None, None, scrub(what), mark) from exc


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LinedDict:
    loader.flatten_mapping(node)
    out = LinedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list or a mapping", key_node.start_mark
            )
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


def read_source(path: Path) -> str:
    """The text of ``path``: a regular file of at most :data:`MAX_BYTES`, in UTF-8."""
    try:
        # Checked before opening: opening a FIFO or a device would wait or read without end.
        if not stat.S_ISREG(path.stat().st_mode):
            raise SourceError(path, None, "not a regular file")
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SourceError(path, None, f"cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # a path with a NUL character in it
        raise SourceError(path, None, f"cannot read: {exc}") from exc
    if len(data) > MAX_BYTES:
        raise SourceError(path, None, f"larger than {MAX_BYTES // 1024 // 1024} MiB, the most a file may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(path, line, f"not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason})") from None


def load_file(path: Path) -> Any:  # noqa: ANN401 - YAML is whatever the file holds
    """Parse ``path``; a syntax error, a value YAML cannot build or an unreadable file is a :class:`SourceError`."""
    return load_text(path, read_source(path))


def load_text(path: Path, text: str) -> Any:  # noqa: ANN401 - YAML is whatever the text holds
    """Parse ``text``, the contents of ``path`` (errors name it); a syntax error becomes a :class:`SourceError`."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SourceError(path, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SourceError(path, line, f"invalid YAML: the character {exc.character!r} is not allowed") from None
    except yaml.YAMLError as exc:
        raise SourceError(path, None, f"invalid YAML: {exc}") from None
