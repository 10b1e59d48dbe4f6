"""Every command's environment variables: one variable sets one setting, never two of different meaning."""

from __future__ import annotations

from collections import defaultdict

import typer.core
import typer.main
from typer.testing import CliRunner

from minimess.entrypoints import cli

# Variables more than one command reads, on purpose: the same thing at both ends.
SHARED = {
    "MINIMESS_UID": {("client", "--uid"), ("token", "--uid")},  # who you are, and whose token
    "MINIMESS_ADMIN_TOKEN": {("serve", "--admin-token"), ("bench", "--metrics-token")},  # one secret
}


def readers() -> dict[str, set[tuple[str, str]]]:
    """Each variable any option reads, with the (command, flag) of every option that reads it."""
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.core.TyperGroup)
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for name, command in {"": group, **group.commands}.items():
        for param in command.params:
            if isinstance(param, typer.core.TyperOption) and param.envvar:
                variables = [param.envvar] if isinstance(param.envvar, str) else param.envvar
                for variable in variables:
                    found[variable].add((name, param.opts[0]))
    return found


def test_no_variable_sets_two_options_but_those_that_mean_the_same() -> None:
    shared = {variable: options for variable, options in readers().items() if len(options) > 1}
    assert shared == SHARED


def test_the_clients_queue_size_has_its_own_variable() -> None:
    """MINIMESS_QUEUE_SIZE, exported for a server (frames), must not change a client (lines)."""
    assert readers()["MINIMESS_QUEUE_SIZE"] == {("serve", "--queue-size")}
    env = {"MINIMESS_QUEUE_SIZE": "0", "MINIMESS_CLIENT_QUEUE_SIZE": "0"}
    result = CliRunner().invoke(cli.app, ["client", "--uid", "bob"], env=env)
    assert result.exit_code == 2
    assert result.stderr == "minimess client: invalid MINIMESS_CLIENT_QUEUE_SIZE: must be at least 1, got 0\n"
