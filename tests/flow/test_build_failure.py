"""A system that fails to build closes what it had opened, so the process that tried can still exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

#: Builds a system on a world whose allowance no SQLite integer holds (the fixture loader refuses
#: such a file; a world made in code is not checked), then returns from main.
SCRIPT = textwrap.dedent(
    """
    import asyncio, dataclasses, sys, tempfile
    from pathlib import Path
    from ivr.bootstrap import build_system
    from ivr import worlds
    from ivr.directory.fixtures import load_world

    world = load_world(worlds.packaged(worlds.DEFAULT))
    first = next(iter(world.contracts.values()))
    world.contracts[first.id] = dataclasses.replace(first, incidents=2**70)

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                await build_system(world=world, workdir=Path(tmp))
            except OverflowError as exc:
                print("refused:", exc)

    asyncio.run(main())
    """
)


def test_a_process_whose_system_failed_to_build_exits():
    """The directory opened before the failure is closed: its reader thread does not keep the process alive."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit after build_system failed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: Python int too large to convert to SQLite INTEGER")
