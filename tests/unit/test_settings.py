"""The settings a command reads once, and the composition root building from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ivr.bootstrap import build_system, open_ivr_directory
from ivr.secrets import PEPPER_ENV, PepperError
from ivr.settings import Settings, read_settings
from ivr.stores import Store

PEPPER = b"a pepper of the deployment, 32 b"


def test_the_pepper_is_read_once_when_the_settings_are_made(monkeypatch):
    """IVR_PEPPER is read into the settings; changing the environment later changes nothing (they are frozen)."""
    monkeypatch.setenv(PEPPER_ENV, PEPPER.decode())
    settings = read_settings(store=Store(path=Path("ivr.db")))
    monkeypatch.setenv(PEPPER_ENV, "another pepper, 32 bytes long..")
    assert settings.pepper == PEPPER
    assert settings.store == Store(path=Path("ivr.db"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.pepper = None  # type: ignore[misc]


async def test_the_root_hashes_under_the_settings_pepper(tmp_path, world, monkeypatch):
    """A directory the root built under a pepper opens under the same settings, and is refused under others."""
    monkeypatch.delenv(PEPPER_ENV, raising=False)  # nothing below the root reads it
    system = await build_system(world=world, workdir=tmp_path, pepper=PEPPER)
    await system.close()
    directory = await open_ivr_directory(Settings(pepper=PEPPER), Store(path=tmp_path / "ivr.db"))
    await directory.close()
    with pytest.raises(PepperError, match="another pepper"):
        await open_ivr_directory(Settings(pepper=b"not the pepper it was made with"), Store(path=tmp_path / "ivr.db"))
