"""A throwaway broker on loopback: Debian's Mosquitto on a free port, for tests and ``ivr`` demos.

Tests that stop and restart the broker cannot share one with other runs, and a developer without
a broker should still be able to run the suite; so this starts a private ``mosquitto`` with a
generated config (listener on 127.0.0.1 only, anonymous, ``set_tcp_nodelay``), waits until it
accepts connections, and stops it afterwards. With a persistence directory it keeps sessions and
queued messages across :meth:`EmbeddedBroker.restart`, the way a production broker does.

Without Mosquitto installed it falls back to amqtt, in process, if that is importable; amqtt has
no persistence, no ACLs, and speaks MQTT 3.1.1 only, so tests that need those need Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import secrets
import shutil
import signal
import socket
import sysconfig
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import structlog

from ivr.bus.base import MAX_MESSAGE
from ivr.bus.url import BrokerConfig
from ivr.subprocesses import DIE_WITH_PARENT, end_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

__all__ = [
    "LOOPBACK",
    "BrokerNotAvailableError",
    "EmbeddedBroker",
    "ListenerTls",
    "embedded_broker",
    "find_mosquitto",
    "free_port",
    "generated_config",
    "local_plugin",
    "restart_broker",
    "rewrite_config",
]

LOOPBACK: Final = "127.0.0.1"
_DEBIAN_MOSQUITTO: Final = Path("/usr/sbin/mosquitto")
_STARTUP_TIMEOUT: Final = 10.0
_PROBE_INTERVAL: Final = 0.02
_PORT_ATTEMPTS: Final = 5
_LOG_TAIL: Final = 2000
#: Free ports are sought from here up to the ephemeral range: above the usual fixed service ports.
_PORTS_FROM: Final = 20000
_TRIES: Final = 200
_EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_EPHEMERAL_DEFAULT: Final = 32768

log = structlog.get_logger("ivr.bus.broker")

#: Brokers started here and not yet closed, by port: :func:`restart_broker` finds them by config.
_RUNNING: dict[int, EmbeddedBroker] = {}


class BrokerNotAvailableError(RuntimeError):
    """No broker could be started: Mosquitto is missing (and amqtt too), or it failed to start."""


def find_mosquitto() -> Path | None:
    """The ``mosquitto`` executable: on ``PATH``, else Debian's ``/usr/sbin/mosquitto``.

    ``IVR_EMBEDDED_BROKER=amqtt`` says there is none, so the amqtt fallback can be run on purpose.
    """
    if os.environ.get("IVR_EMBEDDED_BROKER") == "amqtt":
        return None
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    return _DEBIAN_MOSQUITTO if os.access(_DEBIAN_MOSQUITTO, os.X_OK) else None


def free_port() -> int:
    """A TCP port on loopback that nothing uses now, below the range the OS gives outgoing connections.

    A broker restarted on its port must find it free: a port the OS picks (bind to 0) lies in that
    ephemeral range, where any outgoing connection may take it as its own local port meanwhile, and
    the restart then fails with "address in use".
    """
    below = _ephemeral_ports_start()
    candidates = range(_PORTS_FROM, below)
    for port in secrets.SystemRandom().sample(candidates, k=min(_TRIES, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # none there: the OS's pick, as a last resort
        sock.bind((LOOPBACK, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_ports_start() -> int:
    """The first port of Linux's range for outgoing connections (its default where it cannot be read)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _EPHEMERAL_DEFAULT


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerTls:
    """A TLS listener's files: the broker's certificate chain and key, and the CA clients verify it by.

    With ``require_client_certificate`` a client must show a certificate that CA signed.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    require_client_certificate: bool = False

    def lines(self) -> list[str]:
        """The listener's options in Mosquitto's config."""
        lines = [f"certfile {self.cert_file}", f"keyfile {self.key_file}", f"cafile {self.ca_file}"]
        if self.require_client_certificate:
            lines.append("require_certificate true")
        return lines


def generated_config(
    *,
    port: int,
    persistence_dir: Path | None = None,
    message_size_limit: int | None = MAX_MESSAGE,
    tls: ListenerTls | None = None,
) -> str:
    """A Mosquitto config for a private test broker: loopback only, anonymous, no delay on send.

    ``message_size_limit`` is the largest payload the broker takes (``None``: any, for tests of a
    subscriber's own limit): a larger one is acknowledged to its publisher and forwarded to no one.
    With ``tls`` the one listener speaks TLS only.
    """
    lines = [
        "# Generated by ivr.bus.broker for a throwaway broker: loopback only, anonymous.",
        f"listener {port} {LOOPBACK}",
        *(tls.lines() if tls is not None else []),
        "allow_anonymous true",
        "set_tcp_nodelay true",
        # An offline persistent session keeps at most 1000 messages by default, then drops.
        "max_queued_messages 1000000",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if message_size_limit is not None:
        lines.append(f"message_size_limit {message_size_limit}")
    if persistence_dir is None:
        lines.append("persistence false")
    else:
        lines += ["persistence true", f"persistence_location {persistence_dir}/"]
    return "\n".join(lines) + "\n"


_LISTENER = re.compile(r"^[ \t]*listener[ \t]+\S.*$", re.MULTILINE)
_PERSISTENCE_LOCATION = re.compile(r"^[ \t]*persistence_location[ \t].*$", re.MULTILINE)
_FILE_OPTION = re.compile(
    r"^([ \t]*(?:password_file|acl_file|plugin_opt_config_file|include_dir)[ \t]+)(\S+)[ \t]*$", re.MULTILINE
)
_PLUGIN = re.compile(r"^([ \t]*plugin[ \t]+)(\S+)[ \t]*$", re.MULTILINE)
_LOG_DEST = re.compile(r"^[ \t]*log_dest[ \t].*$", re.MULTILINE)


def rewrite_config(text: str, *, base_dir: Path, port: int, persistence_dir: Path) -> str:
    """A deployment config moved to a free loopback port and a temporary persistence directory.

    Only the listener, the persistence location and the log destination change; the password,
    ACL and dynamic-security files and the included directory are read from ``base_dir`` (where
    the config lives), so a test
    exercises the deployment's real authentication and ACLs, and a plugin is this machine's copy
    (:func:`local_plugin`).
    """
    if len(_LISTENER.findall(text)) != 1:
        msg = "the config to rewrite must have exactly one listener"
        raise ValueError(msg)
    text = _LISTENER.sub(f"listener {port} {LOOPBACK}", text)
    text = _replace_or_add(_PERSISTENCE_LOCATION, f"persistence_location {persistence_dir}/", text)
    text = _replace_or_add(_LOG_DEST, "log_dest stderr", text)
    text = _PLUGIN.sub(lambda m: f"{m.group(1)}{local_plugin(m.group(2))}", text)
    return _FILE_OPTION.sub(lambda m: f"{m.group(1)}{(base_dir / Path(m.group(2)).name).resolve()}", text)


def local_plugin(path: str) -> Path:
    """The local copy of a Mosquitto plugin that a config names by another machine's path.

    The deployment names the path in the eclipse-mosquitto image (``/usr/lib``); Debian puts the
    same library in its multiarch directory (``/usr/lib/x86_64-linux-gnu``).
    """
    name = Path(path).name
    directories = [Path(path).parent, Path("/usr/local/lib")]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        directories.insert(1, Path("/usr/lib") / multiarch)
    for directory in directories:
        if (directory / name).is_file():
            return directory / name
    msg = f"the Mosquitto plugin {name} is not installed (Debian: apt-get install mosquitto)"
    raise ValueError(msg)


def _replace_or_add(option: re.Pattern[str], line: str, text: str) -> str:
    """Put ``line`` where ``option`` first occurs and drop its other occurrences, or append it."""
    if not option.search(text):
        return text.rstrip("\n") + f"\n{line}\n"
    seen: list[bool] = []

    def swap(_: re.Match[str]) -> str:
        seen.append(True)
        return line if len(seen) == 1 else ""

    return option.sub(swap, text)


async def _accepting(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class EmbeddedBroker:
    """A private broker process, started and stopped by the test or command that owns it."""

    def __init__(  # noqa: PLR0913 - every option is a keyword with a default
        self,
        *,
        persistence_dir: Path | None = None,
        base_config: Path | None = None,
        port: int | None = None,
        startup_timeout: float = _STARTUP_TIMEOUT,
        message_size_limit: int | None = MAX_MESSAGE,
        tls: ListenerTls | None = None,
    ) -> None:
        """Describe the broker; :meth:`start` (or ``async with``) runs it.

        ``persistence_dir`` keeps its state across restarts. ``base_config`` is a deployment
        config (``deploy/mosquitto/mosquitto.conf``) to run instead of the generated one, moved
        to loopback by :func:`rewrite_config`. ``port`` is free by default. The generated config
        takes payloads up to ``message_size_limit`` bytes (``None``: any); with ``tls`` its
        listener speaks TLS (Mosquitto only).
        """
        self._persistence_dir = persistence_dir
        self._base_config = base_config
        self._port = port
        self._fixed_port = port is not None
        self._startup_timeout = startup_timeout
        self._message_size_limit = message_size_limit
        self._tls = tls
        self._workdir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._amqtt: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the broker."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker and remove its temporary files."""
        await self.close()

    @property
    def config(self) -> BrokerConfig:
        """Where clients connect: 127.0.0.1 and the broker's port (TLS verified by the listener's CA, if TLS)."""
        if self._port is None:
            msg = "the broker has not been started"
            raise RuntimeError(msg)
        if self._tls is not None:
            return BrokerConfig(host=LOOPBACK, port=self._port, tls=True, ca_file=self._tls.ca_file)
        return BrokerConfig(host=LOOPBACK, port=self._port)

    @property
    def running(self) -> bool:
        """Whether the broker process (or the amqtt broker) is up."""
        if self._amqtt is not None:
            return True
        return self._proc is not None and self._proc.returncode is None

    @property
    def log_path(self) -> Path | None:
        """Mosquitto's log file, for a failing test's report."""
        return self._workdir / "mosquitto.log" if self._workdir else None

    async def start(self) -> None:
        """Start on the chosen port (free by default) and return once it accepts connections."""
        if self.running:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="ivr-broker-"))
        if self._persistence_dir is not None:
            self._persistence_dir.mkdir(parents=True, exist_ok=True)
        mosquitto = find_mosquitto()
        if mosquitto is None:
            await self._start_amqtt()
            return
        for attempt in range(1 if self._fixed_port else _PORT_ATTEMPTS):
            if not self._fixed_port or attempt:
                self._port = free_port()
            if await self._start_mosquitto(mosquitto):
                self._fixed_port = True  # a later start() comes back on the same port
                _RUNNING[self.config.port] = self
                return
        msg = f"mosquitto did not start: {self._log_tail()}"
        raise BrokerNotAvailableError(msg)

    async def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its persistence file) or, with ``kill``, SIGKILL."""
        if self._amqtt is not None:
            broker, self._amqtt = self._amqtt, None
            await broker.shutdown()
            return
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        await end_process(proc, signal.SIGKILL if kill else signal.SIGTERM)
        log.info("broker stopped", port=self._port, killed=kill)

    async def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port, so clients reconnect to the same address."""
        await self.stop(kill=kill)
        await self.start()

    async def close(self) -> None:
        """Stop and remove the temporary directory (not a caller's persistence directory)."""
        await self.stop()
        if self._port is not None and _RUNNING.get(self._port) is self:
            del _RUNNING[self._port]
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- mosquitto -------------------------------------------------------------------------

    def _config_text(self, port: int) -> str:
        assert self._workdir is not None  # noqa: S101 - set by start()
        if self._base_config is None:
            text = generated_config(
                port=port,
                persistence_dir=self._persistence_dir,
                message_size_limit=self._message_size_limit,
                tls=self._tls,
            )
        else:
            persistence = self._persistence_dir or self._workdir / "data"
            persistence.mkdir(parents=True, exist_ok=True)
            text = rewrite_config(
                self._base_config.read_text(),
                base_dir=self._base_config.parent,
                port=port,
                persistence_dir=persistence,
            )
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to the `mosquitto` user, which cannot write its
            # persistence file into our private temporary directories: stay who we are.
            text += "user root\n"
        return text

    async def _start_mosquitto(self, mosquitto: Path) -> bool:
        """Start once on ``self._port``; ``False`` if it exited (the port was taken, say)."""
        assert self._workdir is not None  # noqa: S101 - set by start()
        assert self._port is not None  # noqa: S101 - set by start()
        conf = self._workdir / "mosquitto.conf"
        conf.write_text(self._config_text(self._port))
        with (self._workdir / "mosquitto.log").open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                str(mosquitto),
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=DIE_WITH_PARENT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                return False
            if await _accepting(self._port):
                log.info("broker started", port=self._port, pid=self._proc.pid)
                return True
            await asyncio.sleep(_PROBE_INTERVAL)  # polling a process we do not control
        await self.stop(kill=True)
        msg = f"mosquitto did not accept connections within {self._startup_timeout:g} s: {self._log_tail()}"
        raise BrokerNotAvailableError(msg)

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return path.read_text(errors="replace")[-_LOG_TAIL:]

    # -- amqtt, when there is no mosquitto -------------------------------------------------

    async def _start_amqtt(self) -> None:
        if self._persistence_dir is not None or self._base_config is not None or self._tls is not None:
            msg = "persistence, TLS and deployment configs need mosquitto (apt-get install mosquitto)"
            raise BrokerNotAvailableError(msg)
        try:
            broker_module = importlib.import_module("amqtt.broker")
        except ImportError:
            msg = "no MQTT broker: install mosquitto (apt-get install mosquitto) or the amqtt package"
            raise BrokerNotAvailableError(msg) from None
        if self._port is None:
            self._port = free_port()
        broker = broker_module.Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self._port}"}},
                "sys_interval": 0,
                "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
                "topic-check": {"enabled": False},
            },
        )
        await broker.start()
        self._amqtt = broker
        _RUNNING[self._port] = self
        log.info("amqtt broker started", port=self._port)


@asynccontextmanager
async def embedded_broker(*, persistence_dir: Path | None = None) -> AsyncIterator[BrokerConfig]:
    """A private broker on loopback for the block, yielding where to connect."""
    async with EmbeddedBroker(persistence_dir=persistence_dir) as broker:
        yield broker.config


async def restart_broker(config: BrokerConfig, *, kill: bool = False) -> None:
    """Restart the embedded broker behind ``config`` on the same port (for fault tests)."""
    broker = _RUNNING.get(config.port)
    if broker is None or config.host != LOOPBACK:
        msg = f"no embedded broker runs at {config}"
        raise LookupError(msg)
    await broker.restart(kill=kill)
