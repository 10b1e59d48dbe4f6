"""The README as a new reader takes it: its walkthroughs pasted line by line into terminals of a fresh
copy of the project, and one environment that the next command does not reinstall."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import kafka
from devtools.commands import Failure
from tests.integration.kafka_process import kafka_unavailable
from tests.integration.proxy_process import ProxyUnavailable, find_executable, proxy_unavailable
from tests.integration.readme_walkthrough import (
    COMMAND_TIMEOUT,
    REPLY_TIMEOUT,
    Step,
    Walkthrough,
    copy_project,
    walkthrough,
)
from tests.integration.shell_terminal import reader_env
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

# What uv says when it changes an environment (`Installed 18 packages in 40ms`, `- pytest==8.3.5`).
UV_CHANGES = re.compile(
    r"^\s*(Installed|Uninstalled|Resolved|Prepared|Audited|Built|[+-] \S+==)", re.MULTILINE
)


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=project,
        # uv from its cache, as in the walkthroughs' terminals: no index requests to wait for.
        env=reader_env(UV_OFFLINE="1"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(COMMAND_TIMEOUT),
        check=False,
    )


def test_a_client_after_scripts_serve_installs_nothing_and_neither_does_serve_after_a_client(
    tmp_path: Path,
) -> None:
    project = copy_project(tmp_path / "minimess")
    # The memory walkthrough's first line sets up the environment before it serves; --help stops there.
    first = run(project, "scripts/serve", "--help")
    assert first.returncode == 0, first.stderr
    for _ in range(2):
        client = run(project, "uv", "run", "minimess", "client", "--help")
        assert client.returncode == 0, client.stderr
        assert not UV_CHANGES.search(client.stderr), client.stderr
        again = run(project, "scripts/serve", "--help")
        assert again.returncode == 0, again.stderr
        assert not UV_CHANGES.search(again.stderr), again.stderr


def test_a_walkthrough_is_its_terminals_lines_typed_lines_and_keys_and_nothing_of_its_prose() -> None:
    readme = """
<!-- walkthrough: demo -->
```sh
# terminal 1: a server; Ctrl-C stops it
scripts/serve --port 8080
# terminal 2: a client
uv run minimess client --uid bob
# type: attach news
# terminal 2 shows it. Then:
# terminal 2: press Ctrl-D
```
"""
    assert walkthrough("demo", readme) == [
        Step("terminal 1", "run", "scripts/serve --port 8080"),
        Step("terminal 2", "run", "uv run minimess client --uid bob"),
        Step("terminal 2", "type", "attach news"),
        Step("terminal 2", "press", "Ctrl-D"),
    ]


def test_the_memory_walkthrough(tmp_path: Path) -> None:
    follow(walkthrough("memory"), tmp_path)


@pytest.mark.timeout(scaled(600))
def test_the_kafka_walkthrough(tmp_path: Path) -> None:
    need_kafka()
    follow(walkthrough("kafka"), tmp_path, cleanup=["scripts/kafka", "stop", "--dir", "var/kafka"])


@pytest.mark.timeout(scaled(600))
def test_the_cluster_walkthrough(tmp_path: Path) -> None:
    need_kafka()
    try:
        find_executable("haproxy")
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))
    follow(walkthrough("cluster"), tmp_path, cleanup=["scripts/cluster", "down", "--dir", "var/cluster"])


def need_kafka() -> None:
    try:
        kafka.find_java()
    except Failure as error:
        kafka_unavailable(str(error))


def follow(steps: list[Step], tmp_path: Path, cleanup: list[str] | None = None) -> None:
    """Do every step in a fresh copy of the project; once the last message is typed, the client that
    prints the room shows it; then the steps that stop everything, which must all end."""
    project = copy_project(tmp_path / "minimess")
    stopping = next(index for index, step in enumerate(steps) if step.action == "press")
    session = Walkthrough(project)
    try:
        for step in steps[:stopping]:
            session.do(step)
        sender, message = last_message(steps[:stopping])
        printer = next(step.terminal for step in steps if step.action == "run" and "--print" in step.text)
        session.terminal(printer).wait_for(
            rf"\(@{re.escape(sender)}\): {re.escape(message)}$", scaled(REPLY_TIMEOUT)
        )
        for step in steps[stopping:]:
            session.do(step)
        # Nothing was installed into a chat: the environment was set up once, before.
        for step in steps:
            if step.action == "run" and "minimess client" in step.text:
                screen = session.terminal(step.terminal).screen
                assert not UV_CHANGES.search(screen), f"{step.terminal}:\n{screen}"
    finally:
        session.close()
        # Whatever the steps left running (a failed step before its stop), stopped as the README would.
        if cleanup:
            subprocess.run(
                [sys.executable, *cleanup], cwd=project, capture_output=True, timeout=scaled(120), check=False
            )


def last_message(steps: list[Step]) -> tuple[str, str]:
    """The uid of the client the last line was typed into, and that line."""
    typed = [step for step in steps if step.action == "type"][-1]
    command = [step for step in steps if step.action == "run" and step.terminal == typed.terminal][-1]
    uid = re.search(r"--uid (\S+)", command.text)
    assert uid, f"no --uid in {command.text!r}"
    return uid.group(1), typed.text
