"""Fixtures that start real `minimess serve` processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with extra `serve` options; every server started is stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(*args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server with default settings (ticks off), shared by a test module."""
    process = ServerProcess("--tick", "0").start()
    yield process
    process.stop()
