"""`minimess serve`: its options, their MINIMESS_* variables, and the settings they build (no server runs)."""

from __future__ import annotations

from typing import Any

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from minimess.adapters.websocket.server import WebSocketServer
from minimess.app import cli
from minimess.app.settings import ServerSettings

# Every option of `serve` but --help; -v and -q are shorthands of --log-level (see below).
OPTIONS = {
    "--host": "MINIMESS_HOST",
    "--port": "MINIMESS_PORT",
    "--broker": "MINIMESS_BROKER",
    "--tick": "MINIMESS_TICK",
    "--ping-interval": "MINIMESS_PING_INTERVAL",
    "--ping-timeout": "MINIMESS_PING_TIMEOUT",
    "--close-timeout": "MINIMESS_CLOSE_TIMEOUT",
    "--max-message-bytes": "MINIMESS_MAX_MESSAGE_BYTES",
    "--queue-size": "MINIMESS_QUEUE_SIZE",
    "--max-topics": "MINIMESS_MAX_TOPICS",
    "--rate-limit": "MINIMESS_RATE_LIMIT",
    "--shutdown-timeout": "MINIMESS_SHUTDOWN_TIMEOUT",
    "--node-id": "MINIMESS_NODE_ID",
    "--trusted-proxy": "MINIMESS_TRUSTED_PROXY",
    "--kafka-bootstrap": "MINIMESS_KAFKA_BOOTSTRAP",
    "--kafka-topic": "MINIMESS_KAFKA_TOPIC",
    "--kafka-partitions": "MINIMESS_KAFKA_PARTITIONS",
    "--publish-timeout": "MINIMESS_PUBLISH_TIMEOUT",
    "--trace": "MINIMESS_TRACE",
    "--log-level": "MINIMESS_LOG_LEVEL",
    "--log-format": "MINIMESS_LOG_FORMAT",
}
SHORTHANDS = {"--verbose": "-v", "--quiet": "-q"}
# A wide terminal, so that rich does not fold help lines in the middle of a name.
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


class Served:
    """What `serve` would have run with: the settings of the server and the logging setup."""

    def __init__(self) -> None:
        self.settings: list[ServerSettings] = []
        self.logging: list[tuple[str, str]] = []


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """Replace the server's run and the logging setup by recorders, so that nothing listens."""
    served = Served()

    async def run(self: WebSocketServer, stop: object = None) -> None:
        served.settings.append(self._settings)

    def configure_logging(level: str = "info", log_format: str = "auto") -> None:
        served.logging.append((level, log_format))

    monkeypatch.setattr(WebSocketServer, "run", run)
    monkeypatch.setattr(cli, "configure_logging", configure_logging)
    # A MINIMESS_* variable of the developer's shell must not change what the tests see.
    for variable in OPTIONS.values():
        monkeypatch.delenv(variable, raising=False)
    return served


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli.app, list(args), env={**WIDE, **(env or {})})


def _serve_params() -> dict[str, typer.core.TyperOption]:
    command = typer.main.get_command(cli.app)
    assert isinstance(command, typer.core.TyperGroup)
    serve = command.commands["serve"]
    return {param.opts[0]: param for param in serve.params if isinstance(param, typer.core.TyperOption)}


def test_serve_help_lists_every_option() -> None:
    """`minimess serve --help` names every option, the -v/-q shorthands, and each MINIMESS_* variable."""
    result = _invoke("serve", "--help")
    assert result.exit_code == 0, result.output
    for option, variable in OPTIONS.items():
        assert option in result.output
        assert variable in result.output
    for option, short in SHORTHANDS.items():
        assert option in result.output
        assert short in result.output


def test_serve_has_exactly_the_documented_options() -> None:
    """No option is missing from the list above and none is undocumented."""
    assert set(_serve_params()) == set(OPTIONS) | set(SHORTHANDS)


@pytest.mark.parametrize(("option", "variable"), OPTIONS.items())
def test_every_option_has_its_minimess_environment_variable(option: str, variable: str) -> None:
    """Each option can be set by MINIMESS_<OPTION> (design §7)."""
    assert _serve_params()[option].envvar == variable


def test_verbose_and_quiet_are_short_flags_for_the_log_level() -> None:
    """--verbose and --quiet also answer to -v and -q; in the environment MINIMESS_LOG_LEVEL does that job."""
    params = _serve_params()
    assert params["--verbose"].opts + params["--verbose"].secondary_opts == ["--verbose", "-v"]
    assert params["--quiet"].opts + params["--quiet"].secondary_opts == ["--quiet", "-q"]


def test_verbose_and_quiet_together_are_an_error(served: Served) -> None:
    """`-v -q` is a usage error (exit 2) that says why, and no server is started."""
    result = _invoke("serve", "-v", "-q")
    assert result.exit_code == 2
    assert "exclude each other" in result.output
    assert served.settings == []


def test_serve_without_options_uses_the_default_settings(served: Served) -> None:
    """The CLI's defaults are ServerSettings' defaults, logged at info in the automatic format."""
    result = _invoke("serve")
    assert result.exit_code == 0, result.output
    assert served.settings == [ServerSettings()]
    assert served.logging == [("info", "auto")]


FLAGS = [
    "--host=0.0.0.0",
    "--port=9001",
    "--broker=memory",
    "--tick=0",
    "--ping-interval=3",
    "--ping-timeout=4",
    "--close-timeout=2",
    "--max-message-bytes=4096",
    "--queue-size=16",
    "--max-topics=7",
    "--rate-limit=0",
    "--shutdown-timeout=1.5",
    "--node-id=eu-1",
    "--log-level=error",
    "--log-format=json",
]
EXPECTED = ServerSettings(
    host="0.0.0.0",
    port=9001,
    broker="memory",
    tick=0,
    ping_interval=3,
    ping_timeout=4,
    close_timeout=2,
    max_message_bytes=4096,
    queue_size=16,
    max_topics=7,
    rate_limit=0,
    shutdown_timeout=1.5,
    node_id="eu-1",
)


def test_every_flag_reaches_its_setting(served: Served) -> None:
    """Each option given on the command line lands in the matching ServerSettings field."""
    result = _invoke("serve", *FLAGS)
    assert result.exit_code == 0, result.output
    assert served.settings == [EXPECTED]
    assert served.logging == [("error", "json")]


def test_every_environment_variable_reaches_its_setting(served: Served) -> None:
    """Each MINIMESS_* variable lands in the same setting as its option."""
    env = {OPTIONS[flag.partition("=")[0]]: flag.partition("=")[2] for flag in FLAGS}
    result = _invoke("serve", env=env)
    assert result.exit_code == 0, result.output
    assert served.settings == [EXPECTED]
    assert served.logging == [("error", "json")]


def test_a_flag_wins_over_its_environment_variable(served: Served) -> None:
    """The command line overrides the environment."""
    result = _invoke("serve", "--port=9002", env={"MINIMESS_PORT": "9001", "MINIMESS_TICK": "1"})
    assert result.exit_code == 0, result.output
    assert (served.settings[0].port, served.settings[0].tick) == (9002, 1)


@pytest.mark.parametrize(
    ("args", "env", "level"),
    [
        ((), {}, "info"),
        (("-v",), {}, "debug"),
        (("--verbose",), {}, "debug"),
        (("-q",), {}, "warning"),
        (("--quiet",), {}, "warning"),
        (("--log-level=error",), {}, "error"),
        ((), {"MINIMESS_LOG_LEVEL": "debug"}, "debug"),
        (("-q",), {"MINIMESS_LOG_LEVEL": "debug"}, "warning"),
        (("-v", "--log-level=error"), {}, "debug"),
    ],
)
def test_verbose_quiet_and_log_level_set_the_log_level(
    served: Served, args: tuple[str, ...], env: dict[str, str], level: str
) -> None:
    """-v means debug and -q warning, whatever --log-level or MINIMESS_LOG_LEVEL say; else they decide."""
    result = _invoke("serve", *args, env=env)
    assert result.exit_code == 0, result.output
    assert [logged[0] for logged in served.logging] == [level]


@pytest.mark.parametrize(
    "args",
    [
        ("--port=65536",),
        ("--port=-1",),
        ("--broker=carrier-pigeon",),
        ("--tick=-1",),
        ("--ping-timeout=0",),
        ("--max-message-bytes=127",),
        ("--queue-size=0",),
        ("--max-topics=0",),
        ("--rate-limit=-1",),
        ("--shutdown-timeout=0",),
        ("--log-level=trace",),
        ("--log-format=xml",),
        ("--port=eighty",),
    ],
)
def test_invalid_option_values_are_usage_errors(served: Served, args: tuple[str, ...]) -> None:
    """A value outside its range or choices exits with 2 before any server starts."""
    result = _invoke("serve", *args)
    assert result.exit_code == 2, result.output
    assert served.settings == []


def test_an_invalid_environment_variable_is_a_usage_error(served: Served) -> None:
    """A bad MINIMESS_* value is rejected like the same bad flag."""
    result = _invoke("serve", env={"MINIMESS_PORT": "70000"})
    assert result.exit_code == 2, result.output
    assert served.settings == []


def test_a_port_that_cannot_be_bound_exits_1_with_a_one_line_reason(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError from listening becomes `minimess: cannot serve on host:port: reason` and exit 1."""

    async def run(self: WebSocketServer, stop: object = None) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(WebSocketServer, "run", run)
    result = _invoke("serve", "--port=8123")
    assert result.exit_code == 1
    assert result.stderr == "minimess: cannot serve on 127.0.0.1:8123: Address already in use\n"


@pytest.mark.parametrize(
    ("args", "env", "trace"),
    [
        ((), {}, False),
        (("--trace",), {}, True),
        ((), {"MINIMESS_TRACE": "1"}, True),
        ((), {"MINIMESS_TRACE": "false"}, False),
    ],
)
def test_trace_is_off_unless_asked_for(
    served: Served, args: tuple[str, ...], env: dict[str, str], trace: bool
) -> None:
    """--trace or a true MINIMESS_TRACE turns on stage stamps; by default they are off."""
    result = _invoke("serve", *args, env=env)
    assert result.exit_code == 0, result.output
    assert [settings.trace for settings in served.settings] == [trace]
