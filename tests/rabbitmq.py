"""A RabbitMQ node of the tests' own, with its MQTT plugin, on free loopback ports.

Debian's ``rabbitmq-server`` (3.10 on Debian 12) is started straight from its scripts in
``/usr/lib/rabbitmq/bin`` under a node name of its own, with every file (Mnesia, logs, enabled
plugins, config, the Erlang cookie in its ``HOME``) in a temporary folder and every listener on
127.0.0.1, so a node already running on the machine is neither reached nor reconfigured. The
``rabbitmq`` fixture is one node for the whole session, because a fresh node waits 3 to 6 s for
Raft peers of its MQTT client-id tracker before it elects itself, and no setting shortens that; a
test that kills a node starts its own (:func:`rabbitmq_node`). Installed with apt when missing and
we are root; where it cannot be had, the fixture fails saying why.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from ivr.bus.base import BusError
from ivr.bus.broker import LOOPBACK, free_port
from ivr.bus.mqtt import DEFAULT_INFLIGHT, SESSION_EXPIRY, probe
from ivr.bus.url import BrokerConfig
from ivr.subprocesses import DIE_WITH_PARENT, STOP_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Debian's scripts that run a node as the calling user (``/usr/sbin``'s wrappers switch to ``rabbitmq``).
SCRIPTS: Final = Path("/usr/lib/rabbitmq/bin")
#: A fresh node's boot: Mnesia, the plugins, then 3 to 6 s waiting for MQTT Raft peers that never come.
READY_TIMEOUT: Final = 60.0


def _server_script() -> Path:
    """Debian's rabbitmq-server, installed with apt if we may; a failure saying how to get it otherwise."""
    script = SCRIPTS / "rabbitmq-server"
    apt = shutil.which("apt-get")
    if not script.exists() and os.geteuid() == 0 and apt:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "rabbitmq-server"]):
            subprocess.run(step, check=False, capture_output=True, env=quiet)  # noqa: S603 - fixed arguments
    if not script.exists():
        pytest.fail(
            f"no RabbitMQ here ({script} is missing) and it cannot be installed (needs root and apt): "
            "install Debian's rabbitmq-server package (3.10 or later, with its rabbitmq_mqtt plugin)"
        )
    return script


def _write_files(home: Path, *, mqtt_port: int, amqp_port: int) -> dict[str, str]:
    """The node's config, plugin list, cookie and environment, all under ``home``."""
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {LOOPBACK}:{amqp_port}\n"
        f"mqtt.listeners.tcp.default = {LOOPBACK}:{mqtt_port}\n"
        # Connections without a login act as guest, who may connect from loopback only.
        "mqtt.allow_anonymous = true\n"
        # As docs/deploy.md recommends: as many unacked deliveries as the bus's publish window (the
        # default, 10, caps the ledger's batches at 10), and sessions kept as long as MQTT 5's.
        f"mqtt.prefetch = {DEFAULT_INFLIGHT}\n"
        f"mqtt.subscription_ttl = {SESSION_EXPIRY * 1000}\n"
        "log.console = false\n"
        "log.file.level = info\n"
    )
    (home / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
    (home / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq's, which names the shared node
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)  # Erlang refuses a cookie others can read
    name = f"ivr-test-{secrets.token_hex(4)}@localhost"
    return {
        "HOME": str(home),  # where Erlang, and rabbitmqctl, find the cookie
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": LOOPBACK,  # should this node have to start epmd itself
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
    }


def _probe(config: BrokerConfig) -> None:
    """One MQTT CONNECT, on a thread of its own: the fixture may be asked for inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, probe(config, timeout=2.0)).result()


class RabbitNode:
    """A node in ``home``: started, SIGKILLed and started again on the same files, name and ports."""

    def __init__(self, home: Path) -> None:
        """Write the node's files; nothing runs until :meth:`start`."""
        self._script = _server_script()
        self.home = home
        mqtt_port = free_port()
        self._env = {**os.environ, **_write_files(home, mqtt_port=mqtt_port, amqp_port=free_port())}
        #: How an MQTT client reaches the node.
        self.config = BrokerConfig(host=LOOPBACK, port=mqtt_port)
        self.name = self._env["RABBITMQ_NODENAME"]
        #: The node's own log, and the scripts' output (where a failed boot says why).
        self.logs = [home / "output.log", home / "log" / f"{self.name}.log"]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the node and return once its MQTT listener accepts a client; fail, quoting its logs, if it does not."""
        with self.logs[0].open("ab") as sink:
            self._proc = proc = subprocess.Popen(  # noqa: S603 - our own script and arguments
                [self._script],
                env=self._env,
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: the script, the VM, its port helpers
                preexec_fn=DIE_WITH_PARENT,  # noqa: PLW1509 - a prctl only, see ivr.subprocesses
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                _probe(self.config)
            except BusError:
                time.sleep(0.2)
            else:
                return
        tails = [
            line for log in self.logs if log.exists() for line in log.read_text(errors="replace").splitlines()[-10:]
        ]
        state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready in {READY_TIMEOUT:g} s"
        self.kill()
        pytest.fail(f"the test's RabbitMQ node {state}; its output and log end:\n" + "\n".join(tails))

    def kill(self) -> None:
        """SIGKILL the node's whole process group: no goodbye to its clients, nothing flushed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        """SIGTERM the script (it stops the node gracefully), then SIGKILL whatever lingers."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        self.kill()


@contextlib.contextmanager
def rabbitmq_node() -> Iterator[RabbitNode]:
    """A private node in a temporary folder, started; stopped and the folder removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="ivr-rabbitmq-"))
    try:
        node = RabbitNode(home)
        try:
            node.start()
            yield node
        finally:
            node.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitNode]:
    """One private RabbitMQ node with MQTT for the whole session (its start costs ~10 s)."""
    with rabbitmq_node() as node:
        yield node
