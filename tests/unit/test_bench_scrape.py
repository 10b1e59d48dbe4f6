"""How `minimess bench` reads a running server's /metrics: samples by name, the token, clear failures,
and a sample at the end of a phase that no cached rendering makes stale."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.bench.scrape import CPU_SECONDS, RSS_BYTES, ScrapeError, scrape
from minimess.bench.servers import (
    SCRAPE_SAMPLE_INTERVAL,
    SCRAPE_SETTLE,
    BenchError,
    Sample,
    Servers,
    targeted,
)

EXPOSITION = b"""# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 2.5
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 7.0803456e+07
# TYPE minimess_error_frames_total counter
minimess_error_frames_total{code="bad_frame"} 2.0
minimess_error_frames_total{code="rate_limited"} 3.0
# TYPE minimess_connections_opened_total counter
minimess_connections_opened_total 3.0
"""
TOKEN = "bench-token"


class Endpoint(BaseHTTPRequestHandler):
    """/metrics answers EXPOSITION to the token, 401 to anyone else; /stats answers JSON."""

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._answer(200, b'{"node": "x"}', "application/json")
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, b"no\n", "text/plain")
        else:
            self._answer(200, EXPOSITION, "text/plain; version=0.0.4; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on: bound and closed again, so refused when connected to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_samples_are_read_by_name_and_summed_over_their_labels(base_url: str) -> None:
    figures = scrape(f"{base_url}/metrics", TOKEN)
    assert figures[CPU_SECONDS] == 2.5
    assert figures[RSS_BYTES] == 70_803_456
    assert figures["minimess_error_frames_total"] == 5


def test_without_the_token_the_refusal_is_the_reason(base_url: str) -> None:
    with pytest.raises(ScrapeError, match=r"cannot read .*/metrics: HTTP Error 401"):
        scrape(f"{base_url}/metrics")


def test_a_document_in_another_format_is_refused_as_such(base_url: str) -> None:
    with pytest.raises(ScrapeError, match=r"/stats is not in the Prometheus text format"):
        scrape(f"{base_url}/stats", TOKEN)


def test_a_stats_url_of_before_is_refused_with_where_to_look_instead(base_url: str) -> None:
    """`--stats` is --metrics' old name: a /stats URL given to it says to give /metrics."""
    with (
        pytest.raises(BenchError, match=r"/stats is not in the Prometheus text format.*/metrics URL"),
        targeted(base_url.replace("http:", "ws:"), [f"{base_url}/stats"], TOKEN),
    ):
        pass


def test_a_target_nothing_listens_at_is_named_by_its_ws_url(free_port: int) -> None:
    """Not by the /metrics URL read next, which the user never gave."""
    url = f"ws://127.0.0.1:{free_port}"
    with pytest.raises(BenchError, match=rf"^cannot reach {url}: connection refused$"), targeted(url, []):
        pass


def test_a_targeted_servers_sample_counts_the_connections_it_ever_opened(base_url: str) -> None:
    with targeted(base_url.replace("http:", "ws:"), [f"{base_url}/metrics"], TOKEN) as servers:
        assert servers.read_sample() == Sample(
            cpu_seconds=2.5, rss_bytes=70_803_456, connections_opened=3, cpu_seconds_by_server=(2.5,)
        )


@pytest.mark.parametrize(
    ("started_by_the_bench", "opened_before", "fresh"),
    [(True, None, True), (False, 0, True), (False, 3, False), (False, None, False)],
)
def test_rss_growth_is_the_new_connections_only_on_a_server_that_had_none(
    started_by_the_bench: bool, opened_before: int | None, fresh: bool
) -> None:
    """A server that had connections reuses the memory they freed: its growth says nothing per connection."""
    servers = Servers("t", ("ws://127.0.0.1:1",), lambda: Sample(0.0, 0), fresh=started_by_the_bench)
    assert servers.is_fresh(Sample(0.0, 0, opened_before)) is fresh


class CachedMetrics:
    """A server's /metrics as minimess serves it: rendered again only once the last rendering is
    `max_age` old, on a clock that moves only when slept on. Its CPU time is the clock."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.now = 100.0
        self.rendered: float | None = None

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def read(self) -> Sample:
        if self.rendered is None or self.now - self.rendered >= self.max_age:
            self.rendered = self.now
        return Sample(cpu_seconds=self.rendered, rss_bytes=1)


def test_a_targeted_servers_sample_since_includes_all_they_did_until_it_was_asked() -> None:
    server = CachedMetrics(max_age=WebSocketSettings().metrics_max_age)
    servers = Servers("t", ("ws://127.0.0.1:1",), server.read, SCRAPE_SAMPLE_INTERVAL, SCRAPE_SETTLE)
    server.read()  # read for the peak RSS a moment before the phase ends
    server.sleep(0.3)
    phase_ended = server.now
    assert server.read().cpu_seconds < phase_ended  # what a plain read would have said
    assert servers.sample_since(server.sleep).cpu_seconds >= phase_ended
