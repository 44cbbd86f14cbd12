"""Packaged fixture worlds: `fixture: default` in a scenario, `--fixture NAME|FILE`, and how the console names them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr import worlds
from ivr.cli import main
from ivr.replay.scenario import load_scenario
from ivr.yamlsrc import SourceError

REPO = Path(__file__).resolve().parents[2]
SALES = (
    "name: a sales call\nat: 2026-11-17T10:00:00-05:00\nfixture: {fixture}\n"
    'caller: "+15550199999"\nsteps:\n  - press: "1"\nexpect:\n  outcome: sales\n'
)


def test_the_default_world_is_packaged_data():
    """`default` is a packaged world: its file is inside the ivr package."""
    assert worlds.DEFAULT in worlds.names()
    path = worlds.packaged(worlds.DEFAULT)
    assert path is not None
    assert path.is_file()
    assert path.resolve().is_relative_to(Path(worlds.__file__).resolve().parent)
    assert worlds.packaged("no-such-world") is None


def test_a_scenario_naming_a_packaged_world_loads_it(tmp_path):
    """`fixture: default` in a scenario alone in a folder resolves to the packaged world's file."""
    path = tmp_path / "sales.yaml"
    path.write_text(SALES.format(fixture="default"), encoding="utf-8")
    assert load_scenario(path).fixture == worlds.packaged(worlds.DEFAULT)


def test_a_scenario_naming_neither_world_nor_file_says_both(tmp_path):
    """An unknown fixture is an error at its line that lists the packaged worlds and the path looked at."""
    path = tmp_path / "sales.yaml"
    path.write_text(SALES.format(fixture="defualt"), encoding="utf-8")
    with pytest.raises(SourceError, match=r"fixture 'defualt' is no packaged world \(default\) and no file") as err:
        load_scenario(path)
    assert err.value.line == 3
    assert str(tmp_path / "defualt") in str(err.value)


def test_a_scenario_may_still_name_a_fixture_file(tmp_path):
    """A relative path still names a file beside the scenario."""
    (tmp_path / "worlds").mkdir()
    mine = tmp_path / "worlds" / "mine.yaml"
    mine.write_bytes(worlds.packaged(worlds.DEFAULT).read_bytes())
    path = tmp_path / "sales.yaml"
    path.write_text(SALES.format(fixture="worlds/mine.yaml"), encoding="utf-8")
    assert load_scenario(path).fixture == mine.resolve()


def test_every_shipped_scenario_names_the_packaged_world():
    """The shipped scenarios carry no path to a world, so a copy of them replays anywhere."""
    fixtures = {load_scenario(p).fixture for p in (REPO / "scenarios").rglob("*.yaml")}
    assert fixtures == {worlds.packaged(worlds.DEFAULT)}


def test_replay_from_another_folder_passes_a_scenario_naming_the_packaged_world(tmp_path, monkeypatch):
    """`ivr replay` run elsewhere on a lone scenario with `fixture: default` passes."""
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "sales.yaml").write_text(SALES.format(fixture="default"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["replay", "--in-process", "saved"])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.stdout


def test_a_packaged_world_is_named_by_name_and_a_file_by_its_path(tmp_path):
    """`default` for the packaged world's file; a path relative to a folder for any other file."""
    assert worlds.reference(worlds.packaged(worlds.DEFAULT), tmp_path / "anywhere") == "default"
    assert worlds.name_of(tmp_path / "fixtures" / "mine.yaml") is None
    mine = tmp_path / "fixtures" / "mine.yaml"
    assert worlds.reference(mine, tmp_path / "scenarios") == "../fixtures/mine.yaml"


def embedding(world_text: str) -> str:
    """The sales scenario with ``world_text`` embedded under `world:` instead of a fixture."""
    block = "".join(f"  {line}\n" for line in world_text.splitlines())
    return SALES.replace("fixture: {fixture}\n", f"world: |\n{block}")


def test_a_scenario_with_its_world_embedded_replays_in_any_folder(tmp_path, monkeypatch):
    """`world: |` holding a fixture world's text: the scenario needs no file beside it."""
    (tmp_path / "saved").mkdir()
    text = embedding(worlds.packaged(worlds.DEFAULT).read_text(encoding="utf-8").replace("B-ACME", "B-ACME2"))
    (tmp_path / "saved" / "sales.yaml").write_text(text, encoding="utf-8")
    assert load_scenario(tmp_path / "saved" / "sales.yaml").fixture.read_text(encoding="utf-8").count("B-ACME2") > 0
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["replay", "--in-process", "saved"])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            embedding("customers: [oops") + "fixture: default\n",
            "give either 'fixture' or an embedded 'world', not both",
        ),
        (SALES.replace("fixture: {fixture}", "world: 12"), "'world' must be a fixture world's text"),
        (
            embedding("customers:\n  - {id: C-X, kind: nobody}\n"),
            "the world embedded under 'world' is not a fixture world",
        ),
    ],
)
def test_a_bad_embedded_world_is_a_located_error(tmp_path, text, message):
    """Both keys, a world that is not text, or text that is no fixture world: an error at the `world` line."""
    path = tmp_path / "sales.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=re.escape(message)) as err:
        load_scenario(path)
    assert err.value.line == 3
