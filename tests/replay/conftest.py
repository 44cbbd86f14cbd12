"""Fixtures for suite-level replay tests: the shipped suite replayed once per module, in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ivr.cli import main

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "scenarios"


def run_ivr(*args) -> Result:
    """Run ``ivr ARGS`` in-process (no IVR_BROKER from the environment)."""
    return CliRunner(env={"IVR_BROKER": None}).invoke(main, [str(a) for a in args], catch_exceptions=False)


@dataclass(frozen=True)
class ShippedRun:
    """One replay of the shipped suite with every report written."""

    result: Result
    coverage_json: Path
    coverage_html: Path
    baseline: Path


@pytest.fixture(scope="module")
def run():
    """``run(*args)``: the ``ivr`` command line, in-process."""
    return run_ivr


@pytest.fixture(scope="module")
def suite():
    """The shipped scenarios folder."""
    return SHIPPED


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> ShippedRun:
    """``ivr replay scenarios --coverage --coverage-json --coverage-html --record``, once for the module."""
    out = tmp_path_factory.mktemp("shipped")
    coverage_json, coverage_html, baseline = out / "coverage.json", out / "html", out / "baseline.json"
    result = run_ivr(
        "replay",
        "--in-process",
        SHIPPED,
        "--coverage",
        "--coverage-json",
        coverage_json,
        "--coverage-html",
        coverage_html,
        "--record",
        baseline,
    )
    assert result.exit_code == 0, result.output
    return ShippedRun(result, coverage_json, coverage_html, baseline)
