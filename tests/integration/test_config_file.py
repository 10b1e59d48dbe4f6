"""`minimess serve --config FILE` and `--print-config` as a user runs them: precedence, errors, round trip."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.integration.minimess_command import minimess
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.integration


def printed(output: str) -> dict[str, tuple[str, str]]:
    """--print-config's lines `key = value  # source` as {key: (value, source)}."""
    found = {}
    for line in output.splitlines():
        match = re.fullmatch(r"(\S+) = (.*)  # (.*)", line)
        if match:
            found[match[1]] = (match[2], match[3])
    return found


def test_a_flag_wins_over_the_environment_over_the_file_over_the_default(tmp_path: Path) -> None:
    config = tmp_path / "minimess.toml"
    config.write_text(
        "port = 9000\nqueue-size = 7\nmax-message-bytes = 1000\n"
        'trusted-proxy = ["10.0.0.0/8"]\ntrace = true\n'
    )
    env = {"MINIMESS_QUEUE_SIZE": "8", "MINIMESS_MAX_MESSAGE_BYTES": "2000"}
    shown = minimess(
        "serve", "--config", str(config), "--queue-size", "9", "--no-trace", "--print-config", env=env
    )
    assert shown.returncode == 0, shown.stderr
    values = printed(shown.stdout)
    assert values["queue-size"] == ("9", "flag")  # flag, environment and file all give it
    assert values["trace"] == ("false", "flag")  # --no-trace turns off what the file turned on
    assert values["max-message-bytes"] == ("2000", "env MINIMESS_MAX_MESSAGE_BYTES")
    assert values["port"] == ("9000", f"file {config}")
    assert values["trusted-proxy"] == ('["10.0.0.0/8"]', f"file {config}")
    assert values["host"] == ('"127.0.0.1"', "default")


def test_minimess_config_names_the_file_too(tmp_path: Path) -> None:
    config = tmp_path / "minimess.toml"
    config.write_text("port = 9000\n")
    shown = minimess("serve", "--print-config", env={"MINIMESS_CONFIG": str(config)})
    assert shown.returncode == 0, shown.stderr
    assert printed(shown.stdout)["port"] == ("9000", f"file {config}")


def test_print_config_is_a_config_file_that_gives_the_same_settings(tmp_path: Path) -> None:
    first = minimess(
        "serve",
        "--port",
        "9100",
        "--broker",
        "kafka",
        "--allowed-origin",
        "https://a.example",
        "--admin-port",
        "9101",
        "--print-config",
    )
    assert first.returncode == 0, first.stderr
    config = tmp_path / "printed.toml"
    config.write_text(first.stdout)
    again = minimess("serve", "--config", str(config), "--print-config")
    assert again.returncode == 0, again.stderr
    values = {key: value for key, (value, _source) in printed(first.stdout).items()}
    assert {key: value for key, (value, _source) in printed(again.stdout).items()} == values
    assert values["allowed-origin"] == '["https://a.example"]'
    assert values["admin-port"] == "9101"  # a number, as it is in a file
    # Every value set is said again, and nothing but secrets and unset values is left to comments.
    assert all(source == f"file {config}" for _value, source in printed(again.stdout).values())


def test_a_secret_is_not_printed(tmp_path: Path) -> None:
    shown = minimess("serve", "--print-config", env={"MINIMESS_ADMIN_TOKEN": "s3cret"})
    assert shown.returncode == 0, shown.stderr
    assert "s3cret" not in shown.stdout
    assert "# admin-token: set, not shown (env MINIMESS_ADMIN_TOKEN)" in shown.stdout.splitlines()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("whatever = 1\n", "unknown key 'whatever'"),
        ("max_message_bytes = 1000\n", "unknown key 'max_message_bytes' (did you mean 'max-message-bytes'?)"),
        ('port = "9000"\n', "key 'port' must be an integer, got \"9000\""),
        (
            'trusted-proxy = "10.0.0.0/8"\n',
            "key 'trusted-proxy' must be a list of strings, got \"10.0.0.0/8\"",
        ),
        ("trace = 1\n", "key 'trace' must be true or false, got 1"),
        ('broker = "redis"\n', "key 'broker': must be one of memory, kafka, got 'redis'"),
        ("ping-timeout = 0\n", "key 'ping-timeout': must be more than 0, got 0"),
        ("port = 70000\n", "key 'port': must be at most 65535, got 70000"),
        ('log-level = "loud"\n', "key 'log-level': must be one of debug, info, warning, error, got 'loud'"),
        ('admin-port = "abc"\n', "key 'admin-port' must be an integer, got \"abc\""),
        ("admin-port = 70000\n", "key 'admin-port': must be at most 65535, got 70000"),
        ("host = 1\n", "key 'host' must be a string, got 1"),
        (
            'allowed-origin = ["nope"]\n',
            "key 'allowed-origin': invalid origin 'nope': expected scheme://host[:port]",
        ),
        (
            'trusted-proxy = ["nope"]\n',
            "key 'trusted-proxy': invalid address 'nope': expected an IP address or network",
        ),
        ("port = \n", "not TOML: "),
    ],
)
def test_a_bad_file_is_a_usage_error_naming_the_file_and_the_key(
    tmp_path: Path, text: str, error: str
) -> None:
    config = tmp_path / "minimess.toml"
    config.write_text(text)
    refused = minimess("serve", "--config", str(config))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"minimess serve: {config}: {error}"), refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    refused = minimess("serve", "--config", str(tmp_path / "missing.toml"))
    assert refused.returncode == 2
    assert (
        refused.stderr
        == f"minimess serve: cannot read {tmp_path / 'missing.toml'}: No such file or directory\n"
    )


def test_a_server_started_with_a_config_file_listens_on_its_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "minimess.toml"
    config.write_text(f'port = {port}\nnode-id = "from-file"\n')
    server = ServerProcess()
    # Without ServerProcess's own --port 0, which as a flag would win over the file.
    server.args = ["--config", str(config), "--log-format", "json"]
    try:
        server.start()
        assert server.port == port
        with socket.create_connection(("127.0.0.1", port)):
            pass
    finally:
        server.stop()
