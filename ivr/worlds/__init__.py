"""The fixture worlds shipped inside the package, read with :mod:`importlib.resources`.

A scenario's ``fixture: default`` names one of these instead of a file, so a scenario saved
anywhere (by the trainer console, say) replays anywhere `ivr` is installed; every command that
needs a world starts with :data:`DEFAULT` unless given ``--fixture FILE``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT", "names", "packaged", "reference"]

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


def reference(fixture: Path, folder: Path) -> str:
    """How a scenario kept in ``folder`` names ``fixture``: a packaged world's name, else the relative path."""
    resolved = fixture.resolve()
    for name in names():
        found = packaged(name)
        if found is not None and found.resolve() == resolved:
            return name
    return Path(os.path.relpath(resolved, folder.resolve())).as_posix()
