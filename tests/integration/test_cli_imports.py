"""What each command imports, as `python -X importtime` lists it: only what that command needs.

Every Tab of shell completion runs the program, and a user types at a client that is still importing:
the Kafka client, the terminal UI, the server and the bench cost seconds to the commands that do not use them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.integration.client_process import PrintClient
from tests.integration.minimess_command import minimess
from tests.integration.server_process import FollowedStream, ServerProcess, wait_logged
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

T = TypeVar("T")

# Python's own switch for -X importtime: a line on stderr for every module a process imports.
IMPORTTIME_VARIABLE = "PYTHONPROFILEIMPORTTIME"
IMPORTTIME = {IMPORTTIME_VARIABLE: "1"}

KAFKA = ("aiokafka", "thriftpy2", "minimess.adapters.kafka.broker")
TERMINAL = ("prompt_toolkit", "minimess.adapters.terminal")
SERVER = ("websockets.asyncio.server", "prometheus_client", "minimess.adapters.websocket_server.server")
BENCH = ("minimess.bench.run", "minimess.bench.workers")
# What a command that only parses its options and answers needs none of.
WIRING = ("dependency_injector", "structlog", "jwt", "websockets", "asyncio")
EVERYTHING_HEAVY = (*KAFKA, *TERMINAL, *SERVER, *BENCH, *WIRING)


def imported(lines: Iterable[str]) -> set[str]:
    """The modules named by -X importtime's lines (`import time: self | cumulative | name`)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in lines
        if line.startswith("import time:") and "imported package" not in line
    }


def assert_absent(modules: set[str], heavy: Iterable[str]) -> None:
    assert sorted(name for name in heavy if name in modules) == []


def finished(stream: FollowedStream[T]) -> list[T]:
    """Every item of a stream once its process has closed it."""
    with stream.changed:
        assert stream.changed.wait_for(lambda: not stream.running, timeout=scaled(10)), stream.items[-10:]
        return list(stream.items)


COMPLETION = {"_MINIMESS_COMPLETE": "complete_bash", "COMP_WORDS": "minimess serve --p", "COMP_CWORD": "2"}


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--version",), {}),
        (("--help",), {}),
        ((), {}),
        (("serve", "--help"), {}),
        (("client", "--help"), {}),
        (("bench", "--help"), {}),
        (("serve", "--print-config"), {}),
        ((), COMPLETION),
    ],
    ids=["version", "help", "bare", "serve-help", "client-help", "bench-help", "print-config", "completion"],
)
def test_answering_from_the_options_imports_the_command_line_and_the_settings_only(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    """No Kafka, terminal UI, server, bench, wiring or logging library for help, version and completion."""
    completed = minimess(*args, env={**IMPORTTIME, **env})
    assert completed.returncode == 0, completed.stderr[-2000:]
    modules = imported(completed.stderr.splitlines())
    assert "minimess.entrypoints.cli" in modules
    assert_absent(modules, EVERYTHING_HEAVY)


def test_token_imports_pyjwt_and_no_server(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 32 + "\n")
    completed = minimess("token", "--uid", "alice", "--secret-file", str(secret), env=IMPORTTIME)
    assert completed.returncode == 0, completed.stderr[-2000:]
    modules = imported(completed.stderr.splitlines())
    assert "jwt" in modules
    assert_absent(modules, (*KAFKA, *TERMINAL, *SERVER, *BENCH, "dependency_injector", "structlog"))


async def test_the_client_imports_no_kafka_no_server_and_no_bench(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected and subscribed, so that it has imported all it needs to chat."""
    monkeypatch.setenv(IMPORTTIME_VARIABLE, "1")
    client = PrintClient(tmp_path, "alice", server.url(""), "--topic", "news").start()
    try:
        await asyncio.to_thread(client.stderr.wait_for, lambda line: "connected to" in line, 1, 60.0)
        assert client.process is not None
        client.process.send_signal(signal.SIGINT)
        lines = await asyncio.to_thread(finished, client.stderr)
    finally:
        client.stop()
    modules = imported(lines)
    assert "websockets.asyncio.client" in modules
    assert_absent(modules, (*KAFKA, *SERVER, *BENCH, "jwt"))


async def test_serve_on_the_memory_bus_imports_no_kafka_no_terminal_and_no_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run with a client connected and to its end, so that the server has imported all it ever does."""
    monkeypatch.setenv(IMPORTTIME_VARIABLE, "1")
    # At debug level: the server says when the client is connected.
    served = ServerProcess("--broker", "memory", "--log-level", "debug").start()
    client = PrintClient(tmp_path, "alice", served.url(""), "--topic", "news")
    try:
        client.start()
        await asyncio.to_thread(wait_logged, (served,), "client_connected", within=60.0)
        await asyncio.to_thread(served.stop)
        events = await asyncio.to_thread(finished, served.log)
    finally:
        client.stop()
        served.stop()
    assert [event for event in events if event.get("event") == "server_stopped"], events[-10:]
    modules = imported(str(event.get("line", "")) for event in events)
    assert "websockets.asyncio.server" in modules
    assert_absent(modules, (*KAFKA, *TERMINAL, *BENCH))
