"""Support codes and license keys at rest: keyed hashes in the SQLite file, found by what the caller types."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.directory.sqlite import SqliteDirectory
from ivr.secrets import PEPPER_ENV, PepperError, pepper_from_env

PEPPER = b"a pepper of the deployment, 32 b"


def whole_secrets(world) -> set[bytes]:
    """Every support code and license key of ``world``, as the bytes a file would hold them in."""
    return {s.encode() for s in (*world.support_codes, *world.license_keys)}


def file_bytes(path) -> bytes:
    """The database file and its write-ahead log, as stored on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.parametrize("pepper", [None, PEPPER], ids=["own-pepper", "configured-pepper"])
async def test_the_file_holds_no_whole_code_or_key(tmp_path, world, pepper):
    """After loading the default world, no support code or license key is anywhere in the file's bytes or rows."""
    path = tmp_path / "ivr.db"
    directory = await SqliteDirectory.open(path, pepper=pepper)
    await directory.load(world)
    await directory.close()

    stored = file_bytes(path)
    assert [s for s in whole_secrets(world) if s in stored] == []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        codes = conn.execute("SELECT * FROM support_codes").fetchall()
        keys = conn.execute("SELECT * FROM license_keys").fetchall()
    texts = {str(value) for row in codes + keys for value in row}
    assert not texts & {s.decode() for s in whole_secrets(world)}
    assert {row[1] for row in codes} == {c[-2:] for c in world.support_codes}  # the last two, for display


async def test_a_lookup_by_the_typed_code_or_key_still_finds_it(tmp_path, world):
    """The code and key the caller types are hashed and found, with their contract; a wrong one is not."""
    directory = await SqliteDirectory.open(tmp_path / "ivr.db", pepper=PEPPER)
    await directory.load(world)
    try:
        code = next(iter(world.support_codes.values()))
        found = await directory.find_code(code.code)
        assert found is not None
        assert found[0].code == code.code
        assert found[1].id == code.contract_id
        key = next(iter(world.license_keys.values()))
        found_key = await directory.find_key(key.key)
        assert found_key is not None
        assert (found_key[0].product, found_key[1].id) == (key.product, key.contract_id)
        assert await directory.find_code("9" * 10) is None
        assert await directory.find_key("9" * 8) is None
    finally:
        await directory.close()


async def test_a_second_process_opening_the_file_finds_its_own_pepper(tmp_path, world):
    """With no pepper configured the file keeps the one it made: opened again, a typed code is still found."""
    path = tmp_path / "ivr.db"
    first = await SqliteDirectory.open(path)
    await first.load(world)
    await first.close()

    again = await SqliteDirectory.open(path)
    try:
        assert await again.find_code(next(iter(world.support_codes))) is not None
    finally:
        await again.close()


async def test_a_configured_pepper_is_not_written_and_another_is_refused(tmp_path, world):
    """A configured pepper stays out of the file; opening it without that pepper, or with another, says why."""
    path = tmp_path / "ivr.db"
    directory = await SqliteDirectory.open(path, pepper=PEPPER)
    await directory.load(world)
    await directory.close()
    assert PEPPER not in file_bytes(path)

    with pytest.raises(PepperError, match=f"set {PEPPER_ENV}"):
        await SqliteDirectory.open(path)
    with pytest.raises(PepperError, match="another pepper"):
        await SqliteDirectory.open(path, pepper=b"not the pepper it was made with")


def test_a_short_pepper_in_the_environment_is_refused():
    """IVR_PEPPER shorter than 16 bytes is an error naming the variable; unset or empty means none."""
    with pytest.raises(PepperError, match=PEPPER_ENV):
        pepper_from_env({PEPPER_ENV: "short"})
    assert pepper_from_env({}) is None
    assert pepper_from_env({PEPPER_ENV: ""}) is None
    assert pepper_from_env({PEPPER_ENV: PEPPER.decode()}) == PEPPER


def test_a_command_with_a_short_pepper_is_a_usage_error_before_it_starts(tmp_path):
    """`ivr` with a short IVR_PEPPER exits 2 naming the variable, with no traceback, before running anything."""
    result = CliRunner().invoke(main, ["replay", str(tmp_path)], env={PEPPER_ENV: "short"})
    assert result.exit_code == 2
    assert f"{PEPPER_ENV} is 5 bytes long" in result.output
    assert "Traceback" not in result.output


def test_ledger_verify_on_a_file_made_with_another_pepper_says_so(tmp_path, world):
    """`ivr ledger verify --directory` given a directory hashed under another pepper: exit 1 and why, no traceback."""
    path = tmp_path / "ivr.db"

    async def make() -> None:
        directory = await SqliteDirectory.open(path, pepper=PEPPER)
        await directory.load(world)
        await directory.close()

    asyncio.run(make())
    ledger = tmp_path / "ledger.db"
    ledger.touch()
    result = CliRunner().invoke(
        main, ["ledger", "--db", str(ledger), "verify", "--directory", str(path)], env={PEPPER_ENV: ""}
    )
    assert result.exit_code == 1
    assert f"set {PEPPER_ENV}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
