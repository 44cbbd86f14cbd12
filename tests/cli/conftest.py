"""Fixtures for the command-line tests: run ``ivr`` in-process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ivr.cli import main


@pytest.fixture
def ivr():
    """``ivr(*args)`` runs the command line in-process (no IVR_BROKER from the environment); gives the result."""
    runner = CliRunner(env={"IVR_BROKER": None})

    def run(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run
