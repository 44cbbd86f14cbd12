"""A user's mistake gets a message saying what to do next, never a Python traceback.

Each command runs as its own process (as a user runs it) with a wrong option value, a missing
file and a broker that does not answer: a free loopback port nobody listens on.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from ivr.bus.base import BusError
from ivr.bus.broker import free_port
from ivr.cli.common import Commands

#: Bound on each command: the probe of a dead broker is refused at once on loopback.
TIMEOUT = 60

WRONG_VALUES = [
    pytest.param("replay --log-level verbose", "Invalid value for '--log-level'", id="replay-log-level"),
    pytest.param("replay --broker http://127.0.0.1:1883", "Invalid value for '--broker'", id="replay-broker-url"),
    pytest.param("serve --port 99999", "Invalid value for '--port'", id="serve-port"),
    pytest.param("serve --ledger shared", "Invalid value for '--ledger'", id="serve-ledger"),
    pytest.param("events --count 0", "Invalid value for '--count'", id="events-count"),
    pytest.param("load --calls 0", "Invalid value for '--calls'", id="load-calls"),
    pytest.param("load --calls 10 --shard 3/2", "Invalid value for '--shard'", id="load-shard"),
    pytest.param("relay --db ivr.db --poll 0", "Invalid value for '--poll'", id="relay-poll"),
    pytest.param("diagram --format png", "Invalid value for '--format'", id="diagram-format"),
    pytest.param("ledger run --log-level loud", "Invalid value for '--log-level'", id="ledger-run-log-level"),
    pytest.param("ledger run --partitions 3/2", "Invalid value for '--partitions'", id="ledger-run-partitions"),
    pytest.param("ledger run --partitions half", "a share is K/N", id="ledger-run-partitions-text"),
    pytest.param("ledger relay --log-format yaml", "Invalid value for '--log-format'", id="ledger-relay-format"),
    pytest.param("ledger history", "Missing argument 'CONTRACT'", id="ledger-history-contract"),
    pytest.param("events --mqtt-version 4", "Invalid value for '--mqtt-version'", id="events-mqtt-version"),
    pytest.param("events --broker-ca ivr.db", "needs TLS: an mqtts:// broker URL", id="events-ca-without-tls"),
    pytest.param("replay --broker-ca ivr.db", "need a broker: --broker URL", id="replay-ca-without-broker"),
    pytest.param("events --broker-ca none.pem", "Invalid value for '--broker-ca'", id="events-ca-missing"),
]

MISSING_FILES = [
    pytest.param("replay nowhere.yaml", 2, "nowhere.yaml: no such file or folder", id="replay-file"),
    pytest.param("replay", 2, "no ./scenarios folder here", id="replay-default-folder"),
    pytest.param("serve --fixture nowhere.yaml", 2, "nowhere.yaml: no such fixture file", id="serve-fixture"),
    pytest.param("ledger run --fixture nowhere.yaml", 2, "nowhere.yaml: no such fixture file", id="ledger-fixture"),
    pytest.param("ledger --db none.db balances", 1, "`ivr ledger --store none.db run` creates one", id="balances"),
    pytest.param("ledger --db none.db history K-X", 1, "`ivr ledger --store none.db run` creates one", id="history"),
    pytest.param("ledger --db none.db verify", 1, "`ivr ledger --store none.db run` creates one", id="verify"),
    pytest.param("ledger verify --directory none.db", 2, "no IVR directory file at none.db", id="verify-directory"),
    pytest.param("relay --db none.db", 1, "none.db: no such directory file", id="relay-db"),
    pytest.param("load --calls 1 --mix none.yaml", 2, "'none.yaml' does not exist", id="load-mix"),
    pytest.param("diagram --update none.md", 2, "'none.md' does not exist", id="diagram-update"),
]

#: Each command with the dead broker as --broker URL, and `ivr ledger` alone (no options of `run`) through IVR_BROKER.
DEAD_BROKER = [
    pytest.param("events --broker {url}", id="events"),
    pytest.param("ledger --db x.db run --broker {url}", id="ledger-run"),
    pytest.param("ledger --db x.db", id="ledger-alone-through-IVR_BROKER"),
    pytest.param("ledger --db x.db relay --broker {url}", id="ledger-relay"),
    pytest.param("relay --db ivr.db --broker {url}", id="relay"),
    pytest.param("replay scenario.yaml --broker {url}", id="replay"),
    pytest.param("serve --broker {url}", id="serve"),
    pytest.param("load --calls 1 --broker {url}", id="load"),
]


def ivr(args, cwd, **env):
    """Run ``python -m ivr ARGS`` in ``cwd`` with no broker in the environment; the finished process."""
    clean = {
        k: v for k, v in os.environ.items() if k not in {"IVR_BROKER", "IVR_LEDGER_DB", "IVR_LEDGER_STORE", "IVR_STORE"}
    }
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", *args.split()],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={**clean, **env},
    )


@pytest.fixture
def folder(tmp_path):
    """An empty working folder, but for an (empty) IVR file for `ivr relay --db ivr.db`."""
    (tmp_path / "ivr.db").touch()
    return tmp_path


@pytest.mark.parametrize(("args", "message"), WRONG_VALUES)
def test_a_wrong_option_value_is_a_usage_error(folder, args, message):
    """A value click rejects: exit 2, the option named, no traceback."""
    done = ivr(args, folder)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(("args", "code", "message"), MISSING_FILES)
def test_a_missing_file_is_named_with_what_makes_one(folder, args, code, message):
    """A file that is not there: the file named (and for the ledger, the command that creates it), no traceback."""
    done = ivr(args, folder)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("args", DEAD_BROKER)
def test_a_broker_that_does_not_answer_is_named_with_the_option_that_sets_it(folder, args):
    """--broker at a port nobody listens on: exit 1 naming the URL tried, --broker and IVR_BROKER; no traceback."""
    (folder / "scenario.yaml").write_text(
        "name: a sales call\nat: 2026-11-17T10:00:00-05:00\nfixture: default\n"
        'caller: "+15550199999"\nsteps:\n  - press: "1"\nexpect:\n  outcome: sales\n',
        encoding="utf-8",
    )
    url = f"mqtt://127.0.0.1:{free_port()}"
    done = ivr(args.format(url=url), folder, IVR_BROKER=url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no MQTT broker answers at {url}" in done.stderr
    assert "--broker URL or IVR_BROKER" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_schema_base_that_is_not_a_url_is_a_usage_error_before_the_command_starts(folder):
    """IVR_SCHEMA_BASE not an http(s) URL: exit 2 naming the variable, no traceback, nothing run."""
    done = ivr("ledger balances", folder, IVR_SCHEMA_BASE="schemas/")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "IVR_SCHEMA_BASE is the base URL the event schemas are served at" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_bus_error_inside_a_command_is_an_error_not_a_traceback():
    """What a broker does mid-command (a cluster node refusing a subscription while it starts) ends in one line.

    No broker here refuses a subscription on demand (Mosquitto grants it and filters deliveries;
    NATS refuses only while a node rejoins its cluster), so the command raises what the bus raises.
    """

    @click.group(cls=Commands)
    def group() -> None:
        """A group like `ivr`'s."""

    @group.command()
    def subscribe() -> None:
        """Fail as the bus does."""
        raise BusError("the broker refused the subscription to 'ivr/v2/ledger/#'")

    done = CliRunner().invoke(group, ["subscribe"])
    assert done.exit_code == 1, done.output
    assert "Error: the broker refused the subscription to 'ivr/v2/ledger/#'" in done.output
    assert isinstance(done.exception, SystemExit)
