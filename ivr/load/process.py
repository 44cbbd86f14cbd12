"""An `ivr` service as a child process (`ivr ledger`, `ivr relay`): start, kill, restart, stop.

Load runs and fault tests run these as the separate processes they are in production, and the
fault tests SIGKILL that very process. "Up" means ready: each publishes its retained status
``online`` once connected (the ledger only after its subscription is granted), so
:meth:`ServiceProcess.start` waits for that message rather than for a guessed delay.

A run that depends on a service watches it (:func:`unless_one_ends`): a ledger that dies on a full
disk would otherwise leave the run waiting for answers that never come.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, TypeVar

from ivr.bootstrap import status_bus
from ivr.bus.base import CLEARED, ONLINE, BusError, status_topic
from ivr.bus.url import ENV_VAR
from ivr.directory.relayed import PROGRESS_FILE, relayed_up_to
from ivr.events import TOPIC_ROOT
from ivr.secrets import scrub
from ivr.subprocesses import DIE_WITH_PARENT, end_process

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence
    from pathlib import Path

    from ivr.bus.url import BrokerConfig

__all__ = ["RelayProcess", "ServiceEndedError", "ServiceProcess", "unless_one_ends"]

T = TypeVar("T")

_START_TIMEOUT: Final = 30.0
#: How much of the end of a service's log is read for its last line.
_LOG_TAIL: Final = 8192


class ServiceEndedError(RuntimeError):
    """A service a run depends on ended during it, or never came up; the message names it and says how."""


class ServiceProcess:
    """One `ivr <command>` process at a time, known by its status topic, restartable."""

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        config: BrokerConfig,
        command: list[str],
        instance: str,
        root: str = TOPIC_ROOT,
        log_file: Path | None = None,
        watch_config: BrokerConfig | None = None,
        watch_client_id: str | None = None,
        transient: bool = False,
    ) -> None:
        """Describe the process (``ivr`` and then ``command``); nothing runs until :meth:`start`.

        Its retained status ``<root>/status/<instance>`` is watched through ``watch_config``
        (default: ``config``) as ``watch_client_id``: under the deployed ACL a service's own user
        may write its status but not read it, and each login has one client id it must use. A
        ``transient`` instance is named for one run (a load run's ledger and relay): once the
        process has stopped, its ``offline`` is cleared, as the name never comes back.
        """
        self.config = config
        self.command = command
        self.root = root
        self._log_file = log_file
        self._proc: asyncio.subprocess.Process | None = None
        self._watch = status_bus(watch_config or config, instance=instance, root=root, client_id=watch_client_id)
        self._status = status_topic(instance, root=root) if transient else None
        self._watching: asyncio.Task[None] | None = None
        self._online = 0
        self._changed = asyncio.Event()
        #: Processes started so far (1 + restarts).
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def name(self) -> str:
        """How messages name the process: `ivr ledger`, `ivr relay`."""
        return f"`ivr {self.command[0]}`"

    async def start(self, *, timeout: float = _START_TIMEOUT) -> None:
        """Start the process and return once it is ready (its status says ``online``)."""
        if self._watching is None:
            self._watch.open()
            await self._watch.wait_connected()
            self._watching = asyncio.create_task(self._follow_status(), name="service-status")
        before = self._online
        argv = [sys.executable, "-m", "ivr", *self.command]
        # The broker URL travels in the environment: a password in argv would show in `ps`.
        env = {**os.environ, ENV_VAR: self.config.secret_url(), "PYTHONUNBUFFERED": "1"}
        with contextlib.ExitStack() as files:
            out = files.enter_context(self._log_file.open("ab")) if self._log_file else asyncio.subprocess.DEVNULL
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env, preexec_fn=DIE_WITH_PARENT
            )
        self.starts += 1
        try:
            async with asyncio.timeout(timeout):
                while self._online <= before:
                    if self._proc.returncode is not None:
                        msg = f"{self.name} exited with status {self._proc.returncode} before it was online"
                        raise ServiceEndedError(msg)
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):  # also look at the process now and then
                            await self._changed.wait()
        except TimeoutError:
            msg = f"{self.name} was not online within {timeout:g} s"
            raise ServiceEndedError(msg) from None

    async def ended(self) -> str:
        """Wait for the running process to end; then how it ended and the last line of its log."""
        proc = self._proc
        if proc is None:
            msg = f"{self.name} is not running"
            raise RuntimeError(msg)
        status = await proc.wait()
        how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
        return f"{self.name} {how}; the last line of its log: {self.last_log_line()}"

    def last_log_line(self) -> str:
        """The last line the process wrote (masked, as every log line), or why there is none."""
        if self._log_file is None:
            return "(its output is not kept)"
        try:
            with self._log_file.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL))
                lines = log.read().decode(errors="replace").splitlines()
        except OSError as exc:
            return f"(its log {self._log_file} cannot be read: {exc.strerror})"
        written = [line for line in lines if line.strip()]
        return scrub(written[-1]) if written else "(its log is empty)"

    async def kill(self) -> None:
        """SIGKILL: no chance to finish a batch, publish, or say goodbye (the Last Will does)."""
        await self._signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s); then stop watching its status (clearing a transient one)."""
        await self._signal(signal.SIGTERM)
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
            self._watching = None
        if self._status is not None:
            with contextlib.suppress(BusError):  # never watched, or the broker is gone: nothing to clear there
                await self._watch.publish(self._status, CLEARED, retain=True)
        await self._watch.aclose()

    async def restart(self, *, kill: bool = True) -> None:
        """Kill (or stop) the process and start another on the same file and session."""
        await self._signal(signal.SIGKILL if kill else signal.SIGTERM)
        await self.start()

    async def _signal(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        await end_process(proc, sig)

    async def _follow_status(self) -> None:
        async for delivery in self._watch.deliveries():
            if delivery.payload == ONLINE:
                self._online += 1
                self._changed.set()


class RelayProcess(ServiceProcess):
    """`ivr relay`: the outbox of the IVR's directory ``db`` published by a process of its own."""

    #: The progress file the relay keeps beside ``db``.
    progress_file = PROGRESS_FILE

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        config: BrokerConfig,
        db: Path,
        instance: str,
        root: str = TOPIC_ROOT,
        log_file: Path | None = None,
        log_level: str = "warning",
        watch_config: BrokerConfig | None = None,
        watch_client_id: str | None = None,
        transient: bool = False,
    ) -> None:
        """Describe the relay of ``db``; its status topic is named by ``instance`` (the other options: see above)."""
        self.db = db
        self.progress = db.parent / self.progress_file
        command = [*self.relay_command(), "--progress", str(self.progress), "--root", root]
        command += ["--instance", instance, "--log-level", log_level]
        super().__init__(
            config=config,
            command=command,
            instance=instance,
            root=root,
            log_file=log_file,
            watch_config=watch_config,
            watch_client_id=watch_client_id,
            transient=transient,
        )

    def relay_command(self) -> list[str]:
        """The `ivr` command that relays ``db``, before its common options."""
        return ["relay", "--db", str(self.db)]

    async def relayed_up_to(self) -> int:
        """How far the relay has published (the last row the broker acknowledged), from its progress file."""
        return await relayed_up_to(self.progress)


async def unless_one_ends(work: Awaitable[T], services: Sequence[ServiceProcess]) -> T:
    """``work``'s result, unless one of ``services`` ends first.

    Then ``work`` is cancelled and :class:`ServiceEndedError` says which service ended, how, and
    the last line of its log.
    """
    doing = asyncio.ensure_future(work)
    endings = {asyncio.ensure_future(service.ended()): service for service in services}
    try:
        await asyncio.wait({doing, *endings}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for ending in endings:
            ending.cancel()
        if not doing.done():
            doing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await doing
    if not doing.cancelled():
        return doing.result()
    ended = next(ending for ending in endings if ending.done() and not ending.cancelled())
    raise ServiceEndedError(ended.result())
