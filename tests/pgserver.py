"""A real PostgreSQL for the tests: the one answering on 127.0.0.1:5432, else a private cluster.

``postgres_url`` is a fresh database for the test session, dropped at its end. Where no server
answers on 5432 (user ``postgres``, trust), a cluster of our own is made with Debian's
``initdb`` in a temporary folder and started with ``pg_ctl`` on a free loopback port, as the
``postgres`` user when we are root (PostgreSQL refuses to run as root); the package is installed
with apt when root and missing. Where neither can be had, the fixture fails saying why: a test
that needs PostgreSQL never passes without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from ivr.bus.broker import free_port

SHARED = "postgresql://postgres@127.0.0.1:5432/postgres"
_DEBIAN = Path("/usr/lib/postgresql")


def _answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _run(sql: str, dsn: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _bin_dir() -> Path:
    found = sorted(_DEBIAN.glob("*/bin/initdb"))
    apt = shutil.which("apt-get")
    if not found and os.geteuid() == 0 and apt:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "postgresql"]):
            subprocess.run(step, check=False, capture_output=True, env=quiet)  # noqa: S603 - fixed arguments
        found = sorted(_DEBIAN.glob("*/bin/initdb"))
    if not found:
        pytest.fail(
            "no PostgreSQL answers on 127.0.0.1:5432 and none can be started here: install Debian's "
            "postgresql package (apt-get install postgresql) or start a server on 5432 with trust auth"
        )
    return found[-1].parent


@dataclass(frozen=True)
class PrivateCluster:
    """A cluster of the tests' own: its URL, and a restart for the tests that need one."""

    url: str
    pg_ctl: list[str]
    log: Path

    def restart(self) -> None:
        """Stop the server fast (every connection cut) and start it again, with its options, on the same port."""
        subprocess.run(  # noqa: S603 - our own arguments
            [*self.pg_ctl, "-l", str(self.log), "-m", "fast", "-w", "restart"], check=True, capture_output=True
        )


@contextlib.contextmanager
def _private_cluster():
    """Initdb + pg_ctl in a temporary folder, on a free loopback port; yields a :class:`PrivateCluster`."""
    bin_dir = _bin_dir()
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(  # noqa: S603 - our own arguments
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
        pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
        subprocess.run(  # noqa: S603 - our own arguments
            [*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        pytest.fail(f"could not start a private PostgreSQL: {exc.stderr.decode()[-500:]} {log[-500:]}")
    try:
        yield PrivateCluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", pg_ctl, folder / "log")
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False)  # noqa: S603 - our own arguments
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server's ``postgres`` database: the shared one on 5432, else our own."""
    if _answers(SHARED):
        yield SHARED
        return
    with _private_cluster() as cluster:
        yield cluster.url


@pytest.fixture(scope="module")
def private_postgres():
    """A cluster of the module's own (never the shared server), for tests that restart it."""
    with _private_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """A database of this test session's own on that server, dropped at the end."""
    name = f"ivr_test_{uuid.uuid4().hex[:12]}"
    _run(f"CREATE DATABASE {name}", postgres_server)
    yield postgres_server.rsplit("/", 1)[0] + "/" + name
    _run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", postgres_server)


def fresh_schema() -> str:
    """A schema name no other test uses, so each test's tables start empty."""
    return f"t_{uuid.uuid4().hex[:16]}"
