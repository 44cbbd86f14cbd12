"""Help that reads: whole summaries, every option's default, the version, choices, shell completion."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ivr import __version__
from ivr.cli import main

REPO = Path(__file__).resolve().parents[2]
GROUPS = [pytest.param([], main, id="ivr"), pytest.param(["ledger"], main.commands["ledger"], id="ivr-ledger")]


def _commands(group=main, parent=None, name="ivr"):
    """Every command under ``group`` with a click context like the one `--help` builds: (path, command, ctx)."""
    ctx = click.Context(group, info_name=name, parent=parent, **group.context_settings)
    yield name, group, ctx
    for sub_name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, ctx, f"{name} {sub_name}")
        else:
            yield f"{name} {sub_name}", command, click.Context(command, info_name=sub_name, parent=ctx)


def _summary(command) -> str:
    """The first sentence of a command's docstring, on one line."""
    return command.get_short_help_str(limit=sys.maxsize)


@pytest.mark.parametrize(("args", "group"), GROUPS)
def test_help_lists_every_command_with_its_whole_summary(args, group):
    """`ivr --help` and `ivr ledger --help` show each summary whole, wrapped, never cut with "..."."""
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    listing = result.output.split("Commands:", 1)[1]
    assert not any(line.rstrip().endswith("...") for line in listing.splitlines())
    flat = " ".join(listing.split())
    for name, command in group.commands.items():
        assert f"{name} {_summary(command)}" in flat


def _options():
    """Every visible option that takes a value (flags are off unless given), by command."""
    for path, command, ctx in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden or param.name in {"help", "version"}:
                continue
            if param.is_flag and not param.secondary_opts:
                continue
            yield pytest.param(param, ctx, id=f"{path} {param.opts[0]}")


@pytest.mark.parametrize(("option", "ctx"), list(_options()))
def test_every_option_states_its_default(option, ctx):
    """Each option's help says its default (or that it is required)."""
    record = option.get_help_record(ctx)
    assert record is not None
    text = record[1]
    assert "default" in text or "required" in text, text


@pytest.mark.parametrize(("option", "ctx"), [p for p in _options() if p.values[0].name == "broker"])
def test_every_broker_option_says_where_the_broker_is_taken_from(option, ctx):
    """--broker names IVR_BROKER and what is used without either: 127.0.0.1:1883 or a private broker."""
    text = option.get_help_record(ctx)[1]
    assert "IVR_BROKER" in text
    assert "mqtt://127.0.0.1:1883" in text or "a private broker on a free loopback port" in text


def test_version_is_the_installed_distribution_version():
    """`ivr --version` prints the package's version, the one its metadata says."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ivr, version {__version__}\n"
    assert importlib.metadata.version("ivr") == __version__


LOGGED = ["replay", "serve", "relay", "ledger run", "ledger relay"]


@pytest.mark.parametrize("command", LOGGED)
def test_an_unknown_log_level_is_a_usage_error_listing_the_levels(command):
    """`--log-level verbose` exits 2 with click's usage error naming the levels, and no traceback."""
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ivr", *command.split(), "--log-level", "verbose"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--log-level': 'verbose' is not one of 'debug', 'info', 'warning', 'error'" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr + done.stdout


def test_log_level_takes_any_case():
    """`--log-level DEBUG` is the same choice as `debug`."""
    command = main.commands["replay"]
    option = next(p for p in command.params if p.name == "log_level")
    assert option.type.convert("DEBUG", option, None) == "debug"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_is_click_s_and_documented(shell):
    """`_IVR_COMPLETE={shell}_source ivr` prints a completion script, as the README says."""
    result = CliRunner().invoke(main, [], prog_name="ivr", env={"_IVR_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0
    assert "_IVR_COMPLETE" in result.output
    assert f"_IVR_COMPLETE={shell}_source ivr" in (REPO / "README.md").read_text(encoding="utf-8")
