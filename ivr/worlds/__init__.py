"""The fixture worlds shipped inside the package, read with :mod:`importlib.resources`.

A scenario's ``fixture: default`` names one of these instead of a file, so a scenario saved
anywhere (by the trainer console, say) replays anywhere `ivr` is installed; every command that
needs a world starts with :data:`DEFAULT` unless given ``--fixture FILE``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT", "embedded", "name_of", "names", "packaged", "reference"]

#: The world every command uses when given none: one case for every rule (docs/scenarios.md).
DEFAULT: Final = "default"
_SUFFIX: Final = ".yaml"
# A packaged file as a real path for as long as the process lives: the file itself from an
# installed package, an extracted copy (removed at exit) from a zipped one.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def names() -> list[str]:
    """The packaged worlds' names, sorted."""
    folder = resources.files(__name__)
    return sorted(f.name.removesuffix(_SUFFIX) for f in folder.iterdir() if f.name.endswith(_SUFFIX))


@functools.cache
def packaged(name: str) -> Path | None:
    """The file of the packaged world ``name``, or ``None`` when no world has that name."""
    if name not in names():
        return None
    return _extracted.enter_context(resources.as_file(resources.files(__name__) / f"{name}{_SUFFIX}"))


def embedded(text: str) -> Path:
    """A file holding a world embedded in a scenario (its ``world:`` text), for as long as the process lives.

    The world is then read from a file like any other; one file per distinct text, so a folder of
    saved walks sharing one world writes it once.
    """
    path = _embedded_folder() / f"embedded-{hashlib.sha256(text.encode()).hexdigest()[:16]}{_SUFFIX}"
    if not path.is_file():
        path.write_text(text, encoding="utf-8")
    return path


@functools.cache
def _embedded_folder() -> Path:
    return Path(_extracted.enter_context(tempfile.TemporaryDirectory(prefix="ivr-worlds-")))


def name_of(fixture: Path) -> str | None:
    """The name of the packaged world whose file ``fixture`` is, or ``None`` for a world of one's own."""
    resolved = fixture.resolve()
    for name in names():
        found = packaged(name)
        if found is not None and found.resolve() == resolved:
            return name
    return None


def reference(fixture: Path, folder: Path) -> str:
    """How a scenario kept in ``folder`` names ``fixture``: a packaged world's name, else the relative path."""
    return name_of(fixture) or Path(os.path.relpath(fixture.resolve(), folder.resolve())).as_posix()
