"""Fixtures that start real `minimess serve` processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.kafka_process import KafkaProcess, KafkaUnavailable, kafka_unavailable
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


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProcess]:
    """One fresh Kafka for the test session, on a free port; tests share it through distinct topics.

    When it cannot start, the tests that need it skip, or fail under MINIMESS_REQUIRE_KAFKA=1 (CI).
    """
    process = KafkaProcess(tmp_path_factory.mktemp("kafka"))
    try:
        try:
            process.start()
        except KafkaUnavailable as error:
            kafka_unavailable(str(error))
        yield process
    finally:
        # Also after a failed start: a start that timed out may have left a broker behind.
        process.stop()


@pytest.fixture
def start_kafka(tmp_path: Path) -> Iterator[Callable[[], KafkaProcess]]:
    """Start a fresh Kafka of the test's own, to stop and restart at will; each is stopped after the test."""
    started: list[KafkaProcess] = []

    def start() -> KafkaProcess:
        process = KafkaProcess(tmp_path / f"kafka-{len(started)}")
        started.append(process)
        try:
            return process.start()
        except KafkaUnavailable as error:
            kafka_unavailable(str(error))

    yield start
    for process in started:
        process.stop()
