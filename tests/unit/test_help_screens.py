"""Every command's --help, read as a new user would: flags without values, repeatables said, one style."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from minimess.bench import command
from minimess.bench.settings import BenchSettings
from minimess.entrypoints import cli

COMMANDS = ("serve", "client", "token", "bench")


def help_screen(*args: str) -> str:
    # Wide, so that no option name, metavar or variable is cut.
    result = CliRunner().invoke(cli.app, [*args, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.stdout


def entry(screen: str, flag: str) -> str:
    """An option's lines in a help screen, joined into one: from its flag to the next option's."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|\Z)", screen, re.MULTILINE | re.DOTALL)
    assert match, flag
    return " ".join(match[0].split())


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


def test_serve_and_bench_show_their_choices_and_trace_flag_alike() -> None:
    serve, bench = help_screen("serve"), help_screen("bench")
    for screen in (serve, bench):
        assert re.search(r"--broker\s+<memory\|kafka>", screen)
        assert re.search(r"--trace / --no-trace\s", screen)
    assert re.search(r"--baseline\s+<broadcast\|queued\|kafka\|none>", bench)


def test_every_bench_option_has_a_minimess_bench_variable_shown_in_its_help() -> None:
    screen = help_screen("bench")
    for option in options_of("bench"):
        if option.opts == ["--help"]:
            continue
        # --metrics-token shares serve's --admin-token variable: one secret for both ends.
        expected = (
            "MINIMESS_ADMIN_TOKEN"
            if option.name == "metrics_token"
            else "MINIMESS_BENCH_" + option.opts[0].removeprefix("--").replace("-", "_").upper()
        )
        assert option.envvar == expected
        assert f"[env var: {expected}" in entry(screen, option.opts[0])


def test_bench_variables_reach_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[BenchSettings, Any, Any]] = []

    def bench(*args: Any) -> int:
        ran.append(args)
        return 0

    monkeypatch.setattr(command, "bench", bench)
    env = {"MINIMESS_BENCH_SUBSCRIBERS": "40", "MINIMESS_BENCH_BROKER": "kafka", "MINIMESS_BENCH_TRACE": "1"}
    result = CliRunner().invoke(
        cli.app, ["bench", "--server-port", "9001", "--server-port", "9002", "--baseline", "none"], env=env
    )
    assert result.exit_code == 0, result.output
    ((settings, json_path, log_dir),) = ran
    assert (settings.subscribers, settings.broker, settings.trace) == (40, "kafka", True)
    assert settings.server_ports == (9001, 9002)
    assert (json_path, log_dir) == (None, None)


def test_a_bench_value_the_settings_refuse_is_a_usage_error_naming_the_option() -> None:
    result = CliRunner().invoke(cli.app, ["bench", "--server-port", "9001"])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "minimess bench: invalid --server-port: must give 2 port(s), one per server it starts, got 1\n"
    )


def test_workers_default_is_said_in_words_once() -> None:
    """Its default depends on the machine: 'one per CPU', not the CPU count of the machine that printed it."""
    line = entry(help_screen("bench"), "--workers")
    assert "default: (one per CPU);" in line
    assert line.count("default") == 1


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


def test_admin_port_is_a_port_number_with_its_range_as_port_is() -> None:
    screen = help_screen("serve")
    for flag in ("--port", "--admin-port"):
        line = entry(screen, flag)
        assert line.startswith(f"{flag} <int range> "), line
        assert "0<=x<=65535" in line
