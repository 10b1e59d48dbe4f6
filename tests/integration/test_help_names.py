"""Every command's --help read through a pipe on 80 columns: each option's flags and variable are whole."""

from __future__ import annotations

import re

import pytest
import typer.core
import typer.main

from minimess.entrypoints import cli
from tests.integration.minimess_command import minimess

pytestmark = pytest.mark.integration


def commands() -> dict[str, typer.core.TyperCommand]:
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.core.TyperGroup)
    return {"": group, **group.commands}  # type: ignore[dict-item]


def names(command: typer.core.TyperCommand) -> list[str]:
    """What a user would copy out of the help to type: every flag and every variable."""
    found: list[str] = []
    for param in command.params:
        if isinstance(param, typer.core.TyperOption):
            found += [*param.opts, *param.secondary_opts]
            found += [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    return found


@pytest.mark.parametrize("command", list(commands()))
def test_a_piped_help_on_80_columns_shows_every_flag_and_variable_whole(command: str) -> None:
    shown = minimess(*([command] if command else []), "--help", env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout
    expected = names(commands()[command])
    assert len(expected) > 2
    for name in expected:
        # Whole: not followed by more of a name, as `--max-message-byt` or `MINIMESS_PING_INTE` would be.
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", shown.stdout), (name, shown.stdout)
