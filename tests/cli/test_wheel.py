"""The built wheel stands alone: installed in a fresh venv outside the checkout, every command works there.

The venv gets the wheel alone (``--no-deps``); its dependencies come from the test's own
environment through a ``.pth`` line (a path, so the checkout's editable install is not loaded),
which keeps the test to seconds instead of an install from the lock file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from ivr.bus.broker import EmbeddedBroker, find_mosquitto, free_port
from ivr.replay.scenario import discover

REPO = Path(__file__).resolve().parents[2]
#: Bound on each command: generous for a loaded machine.
TIMEOUT = 120
pytestmark = pytest.mark.slow


def _run(args, *, cwd, check=True, timeout=TIMEOUT):
    done = subprocess.run(  # noqa: S603 - our own programs, fixed arguments
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=_env()
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _env():
    """The environment without anything that points back into the checkout or at a broker."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "IVR_BROKER", "IVR_LEDGER_DB", "IVR_LEDGER_STORE", "IVR_STORE"}
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `pip wheel` builds from a copy of the project's sources (nothing is written into the checkout)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "ivr", source / "ivr", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], cwd=dist)
    (built,) = dist.glob("ivr-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv outside the checkout with the wheel installed: its ``bin`` folder."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: scripts/ensure-mosquitto.sh (run by make test) installs it")
    home = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", home], cwd=home)
    python = home / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home).stdout
    (Path(purelib.strip()) / "ivr-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=home)
    return home / "bin"


@pytest.fixture
def outside(tmp_path):
    """A working folder outside the checkout."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_the_wheel_holds_the_world_the_schemas_and_the_console(wheel):
    """Package data: the default world, every JSON Schema and every static file of the console are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"ivr/worlds/default.yaml", "ivr/load/mix.yaml"}
    expected |= {f"ivr/schemas/{p.name}" for p in (REPO / "ivr" / "schemas").glob("*.json")}
    expected |= {f"ivr/web/static/{p.name}" for p in (REPO / "ivr" / "web" / "static").iterdir()}
    assert expected <= names, sorted(expected - names)


def test_ivr_is_imported_from_the_wheel_not_the_checkout(venv, outside):
    """The venv's `ivr` is the installed wheel's: the checkout is not on its path."""
    done = _run([venv / "python", "-c", "import ivr; print(ivr.__file__)"], cwd=outside)
    assert Path(done.stdout.strip()).is_relative_to(venv.parent)


def test_replay_passes_a_copy_of_the_shipped_scenarios(venv, outside):
    """`ivr replay` with no argument, in a folder holding a copy of scenarios/, passes every one."""
    shutil.copytree(REPO / "scenarios", outside / "scenarios")
    count = len(discover([outside / "scenarios"]))
    done = _run([venv / "ivr", "replay"], cwd=outside)
    assert f"{count} passed, 0 failed ({count} scenarios" in done.stdout


def test_a_scenario_naming_the_packaged_world_passes_anywhere(venv, outside):
    """A scenario alone in a folder, with `fixture: default`, replays from another folder."""
    folder = outside / "saved"
    folder.mkdir()
    (folder / "sales.yaml").write_text(
        "name: a sales call\nat: 2026-11-17T10:00:00-05:00\nfixture: default\n"
        'caller: "+15550199999"\nsteps:\n  - press: "1"\nexpect:\n  outcome: sales\n',
        encoding="utf-8",
    )
    done = _run([venv / "ivr", "replay", "--json", folder / "sales.yaml"], cwd=outside)
    assert json.loads(done.stdout)["passed"] == 1


async def test_ledger_run_starts_with_the_packaged_world(venv, outside, tmp_path):
    """`ivr ledger run --db x.db --broker URL` opens the packaged default world's balances, then stops on SIGTERM."""
    async with EmbeddedBroker(persistence_dir=tmp_path / "mosquitto") as broker:
        ledger = await asyncio.create_subprocess_exec(
            venv / "ivr", "ledger", "--db", "x.db", "run", "--broker", broker.config.url, cwd=outside, env=_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    shown = await asyncio.to_thread(
                        _run, [venv / "ivr", "ledger", "--db", "x.db", "balances", "--json"], cwd=outside, check=False
                    )
                    if shown.returncode == 0 and json.loads(shown.stdout):
                        break
                    await asyncio.sleep(0.1)
        finally:
            ledger.send_signal(signal.SIGTERM)
            _, stderr = await ledger.communicate()
    assert ledger.returncode == 0, stderr.decode()
    assert json.loads(shown.stdout)["K-ANNA-STD"] == {"opening": 5, "balance": 5, "deducted": 0}
    assert "Traceback" not in stderr.decode()


def test_serve_answers_with_its_page_and_assets(venv, outside):
    """`ivr serve` (the packaged world, a private broker) serves the page and the vendored Mermaid."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
        [venv / "ivr", "serve", "--port", str(port)],
        cwd=outside,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = _get(f"http://127.0.0.1:{port}/", server)
        assert "<html" in page.lower()
        assert "mermaid" in _get(f"http://127.0.0.1:{port}/static/mermaid.min.js", server)
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=TIMEOUT)
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err


def _get(url, server):
    """GET ``url`` once the server listens (it starts a broker first); fail if the server ends."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert server.poll() is None, server.communicate()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
                return response.read().decode()
        except OSError:
            assert time.monotonic() < deadline, f"nothing answers at {url}"
            time.sleep(0.1)


def test_load_of_200_calls_passes(venv, outside):
    """`ivr load --calls 200` runs the IVR, ledger and relay from the wheel and deducts exactly once."""
    done = _run([venv / "ivr", "load", "--calls", "200", "--no-progress", "--json"], cwd=outside)
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["completed"] == 200
    assert report["exactly_once"] is True
