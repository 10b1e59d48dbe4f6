"""Every command's --help, read as a new user would: flags without values, repeatables said, one style."""

from __future__ import annotations

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from minimess.entrypoints import cli

COMMANDS = ("serve", "client", "token")


def help_screen(*args: str) -> str:
    # Wide, so that no option name, metavar or variable is cut.
    result = CliRunner().invoke(cli.app, [*args, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.stdout


def options_of(command: str) -> list[typer.core.TyperOption]:
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.core.TyperGroup)
    return [param for param in group.commands[command].params if isinstance(param, typer.core.TyperOption)]


@pytest.mark.parametrize("args", [(), *((command,) for command in COMMANDS)])
def test_no_help_screen_names_a_python_type_for_a_value(args: tuple[str, ...]) -> None:
    """A flag takes no value and shows none; a repeatable option names one value, not a list."""
    screen = help_screen(*args)
    assert "<bool>" not in screen
    assert "<list[" not in screen


@pytest.mark.parametrize("command", COMMANDS)
def test_every_repeatable_option_says_so(command: str) -> None:
    for option in options_of(command):
        if option.multiple:
            assert "repeatable" in str(option.help), option.opts


@pytest.mark.parametrize("command", COMMANDS)
def test_every_duration_says_its_unit(command: str) -> None:
    """Every number that is a time is in seconds, and its help says so (rates are per second)."""
    for option in options_of(command):
        if option.type_descriptor.annotation in (float, float | None):
            assert "second" in str(option.help).lower(), option.opts


def test_the_root_help_offers_shell_completion() -> None:
    screen = help_screen()
    assert "--install-completion" in screen
    assert "--show-completion" in screen
