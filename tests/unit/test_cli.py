"""`minimess serve` and `minimess client`: options derived from the settings, and what serve does with them.

The server is a fake put in place through the container's `server` provider: nothing listens.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from collections.abc import Iterator

import attrs
import pytest
import structlog
import typer.core
import typer.main
from dependency_injector import providers
from typer.testing import CliRunner, Result

from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.settings import ClientSettings, MessagingSettings
from minimess.bootstrap.server import Container
from minimess.bootstrap.settings import ServeSettings
from minimess.entrypoints import cli
from minimess.entrypoints.log_settings import LogSettings

LEVELS = ("debug", "info", "warning", "error")


class FakeServer:
    """Records the settings it is built from; runs by logging one line per level, or fails to listen."""

    def __init__(self) -> None:
        self.built_from: list[ServeSettings] = []
        self.error: OSError | None = None
        # Never set: like a server that is yet to listen, it leaves the collector as it is.
        self.listening = asyncio.Event()

    def build(self, settings: ServeSettings) -> FakeServer:
        self.built_from.append(settings)
        return self

    async def run(self) -> None:
        if self.error is not None:
            raise self.error
        log = structlog.get_logger()
        for level in LEVELS:
            getattr(log, level)(level)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    with Container.server.override(providers.Callable(fake.build, Container.settings)):
        yield fake


# serve configures logging for the process: every test here gets back what it had.
pytestmark = pytest.mark.usefixtures("restored_logging")


def command_options(name: str) -> dict[str, typer.core.TyperOption]:
    command = typer.main.get_command(cli.app)
    assert isinstance(command, typer.core.TyperGroup)
    return {
        param.opts[0]: param
        for param in command.commands[name].params
        if isinstance(param, typer.core.TyperOption)
    }


# None unsets: a MINIMESS_* variable of the developer's shell must not change what the tests see.
UNSET: dict[str, str | None] = {
    str(option.envvar): None for name in ("serve", "client") for option in command_options(name).values()
}


def serve(*args: str, env: dict[str, str] | None = None) -> Result:
    # Wide, so that an error box does not fold the option it names.
    env = {**UNSET, "COLUMNS": "250", "MINIMESS_LOG_FORMAT": "json", **(env or {})}
    return CliRunner().invoke(cli.app, ["serve", *args], env=env)


def logged_levels(result: Result) -> list[str]:
    return [json.loads(line)["level"] for line in result.stderr.splitlines()]


def field_options(*groups: type) -> dict[str, str]:
    """`--flag: MINIMESS_VARIABLE` for every field of `groups`, nested settings classes included."""
    found: dict[str, str] = {}
    for group in groups:
        attrs.resolve_types(group)
        for field in attrs.fields(group):
            if attrs.has(field.type):
                found |= field_options(field.type)
            else:
                name = field.metadata.get("flag", field.name)
                # Its own variable where the usual one would be another command's (MINIMESS_QUEUE_SIZE).
                found["--" + name.replace("_", "-")] = field.metadata.get(
                    "envvar", "MINIMESS_" + name.upper()
                )
    return found


@pytest.mark.parametrize(
    ("command", "groups", "shorthands"),
    [
        ("serve", (ServeSettings, LogSettings), {"--verbose": "-v", "--quiet": "-q"}),
        ("client", (ClientSettings,), {}),
    ],
)
def test_every_settings_field_is_an_option_with_its_minimess_variable(
    command: str, groups: tuple[type, ...], shorthands: dict[str, str]
) -> None:
    options = command_options(command)
    # --config and --print-config are about the settings (tests/integration/test_config_file.py).
    about = ("--config", "--print-config")
    derived = {flag: option.envvar for flag, option in options.items() if flag not in (*shorthands, *about)}
    assert derived == field_options(*groups)
    assert {flag: options[flag].opts for flag in shorthands} == {f: [f, s] for f, s in shorthands.items()}


# One option of each group and of each kind of value; test_options covers deriving them all alike.
FLAGS: dict[str, str | None] = {  # None: a flag without a value
    "--port": "9001",
    "--trusted-proxy": "10.0.0.0/8",
    "--tick": "0",
    "--kafka-partitions": "3",
    "--broker": "kafka",
    "--trace": None,
    "--log-level": "error",
}
EXPECTED = ServeSettings(
    broker="kafka",
    trace=True,
    server=WebSocketSettings(port=9001, trusted_proxies=("10.0.0.0/8",)),
    messaging=MessagingSettings(tick=0),
    kafka=KafkaSettings(kafka_partitions=3),
)


@pytest.mark.parametrize("given_as", ["flags", "variables"])
def test_flags_and_variables_reach_the_settings_and_the_log_level(server: FakeServer, given_as: str) -> None:
    if given_as == "flags":
        result = serve(*(flag if value is None else f"{flag}={value}" for flag, value in FLAGS.items()))
    else:
        result = serve(
            env={"MINIMESS_" + f[2:].replace("-", "_").upper(): v or "1" for f, v in FLAGS.items()}
        )
    assert result.exit_code == 0, result.output
    assert server.built_from == [EXPECTED]
    assert logged_levels(result) == ["error"]


@pytest.mark.parametrize(
    ("args", "env", "lowest"),
    [(("-q",), {"MINIMESS_LOG_LEVEL": "debug"}, "warning"), (("-v", "--log-level=error"), {}, "debug")],
)
def test_verbose_and_quiet_win_over_the_log_level(
    server: FakeServer, args: tuple[str, ...], env: dict[str, str], lowest: str
) -> None:
    result = serve(*args, env=env)
    assert result.exit_code == 0, result.output
    assert logged_levels(result) == list(LEVELS[LEVELS.index(lowest) :])


def test_verbose_and_quiet_together_are_a_usage_error(server: FakeServer) -> None:
    result = serve("-v", "-q")
    assert result.exit_code == 2
    assert "--verbose and --quiet exclude each other" in result.output
    assert server.built_from == []


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--port=65536",), {}, "minimess serve: invalid --port: must be at most 65535, got 65536\n"),
        (
            (),
            {"MINIMESS_MAX_TOPICS": "0"},
            "minimess serve: invalid MINIMESS_MAX_TOPICS: must be at least 1, got 0\n",
        ),
        (
            ("--broker=carrier-pigeon",),
            {},
            "minimess serve: invalid --broker: must be one of memory, kafka, got 'carrier-pigeon'\n",
        ),
        (
            ("--publish-timeout=inf",),
            {},
            "minimess serve: invalid --publish-timeout: must be a finite number, got inf\n",
        ),
        (
            ("--kafka-topic=a/b",),
            {},
            "minimess serve: invalid --kafka-topic: must match [A-Za-z0-9._-]{1,249}, got 'a/b'\n",
        ),
        (
            ("--trusted-proxy=nowhere",),
            {},
            "minimess serve: --trusted-proxy: invalid address 'nowhere': expected an IP address or network\n",
        ),
        (
            ("--admin-port=abc",),
            {},
            "minimess serve: invalid --admin-port: must be a whole number, got 'abc'\n",
        ),
        ((), {"MINIMESS_TRACE": "maybe"}, "minimess serve: invalid MINIMESS_TRACE: must be true or false"),
        # Numbers as written, not rounded to six digits.
        (
            ("--recovery-limit=1000001",),
            {},
            "minimess serve: invalid --recovery-limit: must be at most 1000000, got 1000001\n",
        ),
        (
            ("--history-ttl=604800.5",),
            {},
            "minimess serve: invalid --history-ttl: must be at most 604800, got 604800.5\n",
        ),
        # Digits of another script are no number on a command line, though int() and float() take them.
        (
            ("--port=\u0661\u0662",),
            {},
            "minimess serve: invalid --port: must be a whole number, got '\u0661\u0662'\n",
        ),
        (
            (),
            {"MINIMESS_TICK": "\u0663"},
            "minimess serve: invalid MINIMESS_TICK: must be a number, got '\u0663'\n",
        ),
        (("-v", "-q"), {}, "minimess serve: --verbose and --quiet exclude each other\n"),
    ],
)
def test_a_value_the_settings_refuse_is_a_usage_error_naming_it(
    server: FakeServer, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    """In the project's words, in one line, naming the flag or the variable the value came from."""
    result = serve(*args, env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(named)
    assert len(result.stderr.splitlines()) == 1
    assert server.built_from == []


def test_a_port_that_cannot_be_bound_exits_1_with_a_one_line_reason(server: FakeServer) -> None:
    server.error = OSError(98, "Address already in use")
    result = serve("--port=8123")
    assert result.exit_code == 1
    assert result.stderr == "minimess serve: cannot serve on 127.0.0.1:8123: Address already in use\n"


def test_version_comes_from_the_package_metadata() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"minimess {importlib.metadata.version('minimess')}\n"
