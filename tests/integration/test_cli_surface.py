"""The `minimess` command as a new user meets it: bare, --version, shell completion, a dead bench target."""

from __future__ import annotations

import importlib.metadata
import socket

import pytest

from tests.integration.minimess_command import minimess

pytestmark = pytest.mark.integration


def test_bare_minimess_prints_the_help_and_exits_0() -> None:
    bare = minimess()
    assert bare.returncode == 0, bare.stderr
    assert "Usage: minimess [OPTIONS] COMMAND" in bare.stdout
    for command in ("serve", "client", "token", "bench"):
        assert f" {command} " in bare.stdout


def test_version_prints_the_package_version() -> None:
    version = minimess("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"minimess {importlib.metadata.version('minimess')}\n"


def test_show_completion_prints_a_bash_script_that_asks_minimess() -> None:
    script = minimess("--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _minimess_completion minimess" in script.stdout
    assert "_MINIMESS_COMPLETE=complete_bash" in script.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("minimess se", ["serve"]),
        ("minimess serve --trusted-p", ["--trusted-proxy"]),
        ("minimess bench --server-p", ["--server-port"]),
    ],
)
def test_bash_completion_completes_commands_and_options(words: str, expected: list[str]) -> None:
    """What bash's completion function asks: COMP_WORDS and COMP_CWORD in, one candidate a line out."""
    env = {
        "_MINIMESS_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    completed = minimess(env=env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == expected


def test_bench_names_a_dead_target_by_its_ws_url() -> None:
    """Not by the /metrics URL it reads next: the user gave the ws:// one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    bench = minimess("bench", "--target", url, "--baseline", "none", "--subscribers", "1", "--rounds", "1")
    assert bench.returncode == 1
    assert bench.stderr.strip() == f"minimess bench: cannot reach {url}: connection refused"
