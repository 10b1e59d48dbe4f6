"""The `minimess` command as a new user meets it: bare, --version, shell completion, a dead bench target."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.minimess_command import minimess
from tests.integration.server_process import PROCESS_START
from tests.timeouts import scaled

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


def in_bash(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`minimess ...` run from bash, the shell completion detects (`; :` keeps bash its parent)."""
    script = f'"$0" -m minimess {command}; :'
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    return subprocess.run(
        ["bash", "-c", script, sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(PROCESS_START),
    )


def test_show_completion_prints_a_bash_script_that_asks_minimess(tmp_path: Path) -> None:
    script = in_bash("--show-completion", tmp_path)
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _minimess_completion minimess" in script.stdout
    assert "_MINIMESS_COMPLETE=complete_bash" in script.stdout


def test_install_completion_installs_the_script_for_bash(tmp_path: Path) -> None:
    installed = in_bash("--install-completion", tmp_path)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "minimess.sh"
    assert "_MINIMESS_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


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
