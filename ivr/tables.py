"""Text tables for the reports: aligned columns, fitted to a terminal's width and coloured only there.

Off a terminal (a pipe, a file, a CI log) a table is plain text of its full width, so ``grep`` and
``awk`` see every character; ``--json`` is the form for programs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

import click

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PLAIN", "Terminal", "render", "terminal_of"]

#: Cells that are verdicts, and their colour on a terminal.
_VERDICTS: Final = {"PASS": "green", "OK": "green", "FAIL": "red", "FAILED": "red", "ERROR": "red"}
_GAP: Final = 2
#: A column shrunk to fit the terminal keeps at least this many characters.
_NARROWEST: Final = 8
_CUT: Final = "…"


@dataclass(frozen=True, slots=True)
class Terminal:
    """Where a table is shown: ``width`` columns to fit in (``None``: any), and whether colour is wanted."""

    width: int | None = None
    colour: bool = False


PLAIN: Final = Terminal()


def terminal_of(stream: TextIO) -> Terminal:
    """``stream``'s terminal: its width, colour unless ``NO_COLOR`` is set; plain when not a terminal."""
    if not stream.isatty():
        return PLAIN
    return Terminal(width=shutil.get_terminal_size().columns, colour="NO_COLOR" not in os.environ)


def _fit(widths: list[int], floor: list[int], width: int) -> list[int]:
    """Narrow the widest columns (never below ``floor``) until a row fits in ``width``."""
    widths = list(widths)
    while sum(widths) + _GAP * (len(widths) - 1) > width:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floor[i])
        if widths[widest] <= floor[widest]:
            break
        widths[widest] -= 1
    return widths


def _cell(text: str, width: int, *, colour: bool, header: bool) -> str:
    shown = text if len(text) <= width else text[: width - 1] + _CUT
    pad = " " * (width - len(shown))
    if colour and header:
        return click.style(shown, bold=True) + pad
    if colour and text in _VERDICTS:
        return click.style(shown, fg=_VERDICTS[text], bold=True) + pad
    return shown + pad


def render(rows: Sequence[Sequence[str]], terminal: Terminal = PLAIN) -> str:
    """``rows`` (the first is the header) as aligned lines, fitted and coloured for ``terminal``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if terminal.width is not None:
        floor = [min(w, max(len(h), _NARROWEST)) for w, h in zip(widths, rows[0], strict=True)]
        widths = _fit(widths, floor, terminal.width)
    lines = []
    for index, row in enumerate(rows):
        cells = [_cell(text, w, colour=terminal.colour, header=index == 0) for text, w in zip(row, widths, strict=True)]
        lines.append((" " * _GAP).join(cells).rstrip())
    return "\n".join(lines)
