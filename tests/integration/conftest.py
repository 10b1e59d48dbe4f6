"""Fixtures that start real `minimess serve` processes, pick a proxy, start Kafkas of a test's own, and
open pages in a real Chromium (the shared Kafka is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.integration.browser_process import BrowserUnavailable, PageOpener, browser_unavailable, chromium
from tests.integration.client_process import TerminalClient
from tests.integration.kafka_process import KafkaProcess, KafkaUnavailable, kafka_unavailable
from tests.integration.proxy_process import PROXIES, ProxyUnavailable, find_executable, proxy_unavailable
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with extra `serve` options; every server started is stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, file_limit: int | None = None) -> ServerProcess:
        server = ServerProcess(*args, file_limit=file_limit).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server with default settings (ticks off), shared by a test module.

    /stats and /metrics are rendered at every request: the tests read them before and after what
    they count, often within the second for which a default server answers with the same rendering.
    """
    process = ServerProcess("--tick", "0", "--metrics-max-age", "0").start()
    yield process
    process.stop()


@pytest.fixture(params=PROXIES)
def proxy_kind(request: pytest.FixtureRequest) -> str:
    """A test that takes it runs behind HAProxy and behind nginx; skipped or failed when one is missing."""
    kind = str(request.param)
    try:
        find_executable(kind)
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))
    return kind


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


@pytest.fixture
def start_client(tmp_path: Path) -> Iterator[Callable[..., TerminalClient]]:
    """Start a terminal client as `uid` on a server, in a directory of its own, once it is connected;
    all are killed after the test."""
    started: list[TerminalClient] = []

    def start(
        uid: str, server: ServerProcess, *args: str, directory: Path | None = None, cpr: bool = False
    ) -> TerminalClient:
        """`directory`: where it runs (default one of its own); `cpr`: see TerminalClient."""
        client = TerminalClient(directory or tmp_path / uid, uid, server.url(""), *args, cpr=cpr)
        started.append(client)
        client.start()
        client.expect(rf"^\* connected to [^\n]* as {uid}\b")
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for a test module; skipped or failed when it is not installed."""
    try:
        with chromium() as launched:
            yield launched
    except BrowserUnavailable as error:
        browser_unavailable(str(error))


@pytest.fixture
def open_page(browser: Browser) -> Iterator[PageOpener]:
    """Open pages, each in a new browser context; the test fails if one logged an error or a warning
    to its console, or threw, that the test did not `allow`."""
    opener = PageOpener(browser)
    yield opener
    unexpected = opener.close()
    if unexpected:
        pytest.fail("the page logged:\n" + "\n".join(unexpected))
