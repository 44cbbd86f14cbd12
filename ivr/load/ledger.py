"""`ivr ledger` as its own process, for load runs and fault tests: start, kill, restart, verify.

The ledger is a separate process in production, so a load run measures it as one (its own
interpreter, its own SQLite file, a persistent MQTT session with manual acks) and the fault tests
SIGKILL that very process. "Up" means subscribed: the ledger publishes its retained status
``online`` only after its subscription is granted, so :meth:`LedgerProcess.start` waits for that
message rather than for a guessed delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ivr.bus.base import ONLINE, status_topic
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import ENV_VAR
from ivr.events import TOPIC_ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from ivr.bus.url import BrokerConfig

__all__ = ["LedgerProcess", "VerifyResult", "verify_ledger"]

_START_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 10.0
_VERIFY_LINE: Final = re.compile(
    r"ledger verify: (?P<verdict>\w+) \((?P<contracts>\d+) contracts, (?P<deductions>\d+) deductions, "
    r"(?P<rejections>\d+) rejections, (?P<problems>\d+) problems\)"
)


class LedgerProcess:
    """One `ivr ledger` process at a time under a fixed client id, restartable on the same file."""

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        config: BrokerConfig,
        db: Path,
        fixture: Path,
        client_id: str,
        source: str,
        root: str = TOPIC_ROOT,
        log_file: Path | None = None,
        log_level: str = "warning",
        watch_config: BrokerConfig | None = None,
    ) -> None:
        """Describe the process; nothing runs until :meth:`start`.

        Its retained status is watched through ``watch_config`` (default: ``config``): under the
        deployed ACL the ledger's own user may write its status but not read it.
        """
        self.config = config
        self.db = db
        self.fixture = fixture
        self.client_id = client_id
        self.source = source
        self.root = root
        self._log_file = log_file
        self._log_level = log_level
        self._proc: asyncio.subprocess.Process | None = None
        self._watch = MqttBus(
            config=watch_config or config, subscriptions=[status_topic(source, root=root)], topic_root=root
        )
        self._watching: asyncio.Task[None] | None = None
        self._online = 0
        self._changed = asyncio.Event()
        #: Processes started so far (1 + restarts).
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self, *, timeout: float = _START_TIMEOUT) -> None:
        """Start the process and return once it is subscribed (its status says ``online``)."""
        if self._watching is None:
            self._watch.open()
            await self._watch.wait_connected()
            self._watching = asyncio.create_task(self._follow_status(), name="ledger-status")
        before = self._online
        argv = [
            sys.executable,
            "-m",
            "ivr",
            "ledger",
            "--db",
            str(self.db),
            "run",
            "--fixture",
            str(self.fixture),
            "--client-id",
            self.client_id,
            "--root",
            self.root,
            "--source",
            self.source,
            "--log-level",
            self._log_level,
        ]
        # The broker URL travels in the environment: a password in argv would show in `ps`.
        env = {**os.environ, ENV_VAR: self.config.secret_url(), "PYTHONUNBUFFERED": "1"}
        with contextlib.ExitStack() as files:
            out = files.enter_context(self._log_file.open("ab")) if self._log_file else asyncio.subprocess.DEVNULL
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        self.starts += 1
        try:
            async with asyncio.timeout(timeout):
                while self._online <= before:
                    if self._proc.returncode is not None:
                        msg = f"`ivr ledger` exited with status {self._proc.returncode} before it was online"
                        raise RuntimeError(msg)
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):  # also look at the process now and then
                            await self._changed.wait()
        except TimeoutError:
            msg = f"`ivr ledger` was not online within {timeout:g} s"
            raise RuntimeError(msg) from None

    async def kill(self) -> None:
        """SIGKILL: no chance to finish a batch, publish, or say goodbye (the Last Will does)."""
        await self._signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s); then stop watching its status."""
        await self._signal(signal.SIGTERM)
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
            self._watching = None
        await self._watch.aclose()

    async def restart(self, *, kill: bool = True) -> None:
        """Kill (or stop) the process and start another on the same file and session."""
        await self._signal(signal.SIGKILL if kill else signal.SIGTERM)
        await self.start()

    async def _signal(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _follow_status(self) -> None:
        async for delivery in self._watch.deliveries():
            if delivery.payload == ONLINE:
                self._online += 1
                self._changed.set()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """What `ivr ledger verify --directory` said, and its exit status."""

    ok: bool
    exit_status: int
    deductions: int
    rejections: int
    problems: int
    output: str


async def verify_ledger(db: Path, *, directory: Path) -> VerifyResult:
    """Run `ivr ledger --db DB verify --directory IVR_DB` and read its verdict."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr",
        "ledger",
        "--db",
        str(db),
        "verify",
        "--directory",
        str(directory),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace").strip()
    found = _VERIFY_LINE.search(text)
    status = proc.returncode if proc.returncode is not None else -1
    return VerifyResult(
        ok=status == 0 and found is not None and found["verdict"] == "OK",
        exit_status=status,
        deductions=int(found["deductions"]) if found else 0,
        rejections=int(found["rejections"]) if found else 0,
        problems=int(found["problems"]) if found else -1,
        output=text,
    )
