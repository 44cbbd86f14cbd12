"""`ivr ledger` as its own process, for load runs and fault tests, and `ivr ledger verify` on its file.

The ledger is a separate process in production, so a load run measures it as one (its own
interpreter, its own SQLite file, a persistent MQTT session with manual acks) and the fault tests
SIGKILL that very process (:class:`~ivr.load.process.ServiceProcess`). `ivr ledger relay`, the
ledger's announcements from a process of their own, runs here too for the ledger's benchmark and
tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from ivr.bootstrap import ledger_of
from ivr.bus.mqtt import forget_session
from ivr.directory.relayed import LEDGER_PROGRESS_FILE
from ivr.events import TOPIC_ROOT
from ivr.load.process import RelayProcess, ServiceProcess

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ivr.bus.url import BrokerConfig

__all__ = ["LedgerProcess", "LedgerRelayProcess", "VerifyResult", "start_ledger", "verify_ledger"]

_VERIFY_LINE: Final = re.compile(
    r"ledger verify: (?P<verdict>\w+) \((?P<contracts>\d+) contracts, (?P<deductions>\d+) deductions, "
    r"(?P<rejections>\d+) rejections, (?P<problems>\d+) problems\)"
)


class LedgerProcess(ServiceProcess):
    """One `ivr ledger` process at a time under a fixed client id, restartable on the same file."""

    def __init__(  # noqa: PLR0913 - every option is a keyword
        self,
        *,
        config: BrokerConfig,
        db: Path | str,
        fixture: Path,
        client_id: str,
        source: str,
        root: str = TOPIC_ROOT,
        log_file: Path | None = None,
        log_level: str = "warning",
        watch_config: BrokerConfig | None = None,
        watch_client_id: str | None = None,
        announce: bool = True,
        share: str | None = None,
        partitions: str | None = None,
        transient: bool = False,
    ) -> None:
        """Describe the ledger on ``db`` (an SQLite file or a PostgreSQL URL); its status topic is named by ``source``.

        A ``transient`` ledger (a load run's, its source named for that run) has its status cleared once stopped.

        ``announce=False`` leaves its events to a :class:`LedgerRelayProcess` on the same file;
        ``share`` names the group of ledgers it shares the ticket events with (`ivr ledger --share`),
        ``partitions`` the share ``K/N`` of the ticket partitions it takes (`ivr ledger --partitions`).
        """
        command = ["ledger", "--db", str(db), "run", "--fixture", str(fixture), "--client-id", client_id]
        command += ["--root", root, "--source", source, "--log-level", log_level]
        command += [] if announce else ["--no-announce"]
        command += ["--share", share] if share else []
        command += ["--partitions", partitions] if partitions else []
        super().__init__(
            config=config,
            command=command,
            instance=source,
            root=root,
            log_file=log_file,
            watch_config=watch_config,
            watch_client_id=watch_client_id,
            transient=transient,
        )
        self.db = db
        self.fixture = fixture
        self.client_id = client_id
        self.source = source


class LedgerRelayProcess(RelayProcess):
    """`ivr ledger relay`: the events of the ledger on ``db`` published by a process of its own."""

    progress_file = LEDGER_PROGRESS_FILE

    @property
    def name(self) -> str:
        """`ivr ledger relay`, as messages name it."""
        return "`ivr ledger relay`"

    def relay_command(self) -> list[str]:
        """`ivr ledger --db DB relay`."""
        return ["ledger", "--db", str(self.db), "relay"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """What `ivr ledger verify --directory` said, and its exit status."""

    ok: bool
    exit_status: int
    deductions: int
    rejections: int
    problems: int
    output: str

    def for_report(self, *, own_ledger: bool) -> dict[str, Any]:
        """The verdict as a load report's ``verify``; ``own_ledger``: the run started this ledger."""
        return {**asdict(self), "own_ledger": own_ledger}


async def verify_ledger(db: Path | str, *, directory: Path | str, more: Sequence[Path | str] = ()) -> VerifyResult:
    """Run `ivr ledger --db DB verify --directory IVR_DB [--directory ...]` and read its verdict.

    ``more`` are the directories of other IVRs that shared the ledger (`ivr load --workers`).
    Each is a path to an SQLite file or a PostgreSQL URL.
    """
    directories = [arg for path in (directory, *more) for arg in ("--directory", str(path))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr",
        "ledger",
        "--db",
        str(db),
        "verify",
        *directories,
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


async def start_ledger(  # noqa: PLR0913 - every option but the stack is a keyword
    stack: contextlib.AsyncExitStack, *, config: BrokerConfig, db: Path | str, workdir: Path, source: str, root: str
) -> LedgerProcess:
    """Start `ivr ledger` for a load run on ``workdir/world.yaml``; ``stack`` stops it and drops its session.

    It announces its events itself: with the IVRs' processes holding both cores, a separate
    `ivr ledger relay` is one more process competing for them (docs/performance.md).
    """
    ledger = LedgerProcess(
        config=config,
        db=db,
        fixture=workdir / "world.yaml",
        client_id=ledger_of(source),
        source=ledger_of(source),
        root=root,
        log_file=workdir / "ledger.log",
        transient=True,
    )
    stack.push_async_callback(forget_session, config, ledger.client_id)
    stack.push_async_callback(ledger.stop)
    await ledger.start()
    return ledger
