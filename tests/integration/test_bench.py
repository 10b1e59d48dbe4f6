"""`minimess bench` as a user runs it: short runs against real servers, Kafka and a proxy.

These are smoke tests: they check that every figure is there and consistent, never how fast
anything was (that is what the benchmark itself reports, in docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import (
    ProxyProcess,
)
from tests.integration.server_process import ServerProcess, wait_status
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

# A short run: 20 subscribers on 2 topics, 20 messages, so 10 x 10 deliveries per topic.
SHORT = ("--subscribers", "20", "--topics", "2", "--messages", "20", "--rounds", "1", "--workers", "2")
SHORT_DELIVERIES = 200
# Long enough for the servers' CPU time, which /metrics gives in clock ticks (10 ms), to move.
TICKING = (*SHORT, "--messages", "1000")
TICKING_DELIVERIES = 10_000
BENCH_WITHIN = 120.0
# Until a Kafka server answers /readyz 200: it creates the Kafka topic and connects first.
READY_WITHIN = 20.0
LATENCIES = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms")
STAGES = [
    "sent->received",
    "received->accepted",
    "received->delivered",
    "delivered->queued",
    "queued->written",
    "written->client",
]


def bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run `minimess bench ... --json -`; its JSON document and the table it printed on stderr."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "minimess",
            "bench",
            *args,
            "--json",
            "-",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=scaled(BENCH_WITHIN),
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout), completed.stderr


def assert_sane_delivery_figures(median: dict[str, Any], deliveries: int) -> None:
    assert median["deliveries"] == median["expected_deliveries"] == deliveries
    assert median["publish_errors"] == 0
    assert median["slow_consumer_closes"] == 0
    assert median["other_closes"] == 0
    assert median["deliveries_per_s"] > 0
    assert median["cpu_us_per_delivery"] >= 0
    assert median["subscriber_cpu_us_per_delivery"] > 0
    assert median["messages_per_frame"] >= 1
    latencies = [median[name] for name in LATENCIES]
    assert 0 <= latencies[0] <= latencies[1] <= latencies[2] <= latencies[3]


@pytest.mark.parametrize("design", ["broadcast", "queued"])
def test_memory_broker_against_a_baseline(tmp_path: Path, design: str) -> None:
    """A short run reports every figure for both servers and minimess/baseline ratios, as JSON and a table."""
    document, table = bench(tmp_path, *SHORT, "--baseline", design)
    servers = document["servers"]
    assert set(servers) == {"baseline", "minimess"}
    assert servers["baseline"]["name"] == f"bare {design}"
    for server in servers.values():
        median = server["median"]
        assert median["connections"] == 20
        assert median["connect_failures"] == 0
        assert median["connections_per_s"] > 0
        assert median["messages_acked"] == 20
        assert_sane_delivery_figures(median, SHORT_DELIVERIES)
        assert len(server["rounds"]) == 1
    assert document["ratio"]["deliveries"] == 1.0
    assert document["ratio"]["deliveries_per_s"] > 0
    assert document["stages"] == []
    # The table itself is test_bench_report.py's; here, that it is printed.
    assert "server CPU per delivery µs" in table


def test_trace_breaks_latency_down_by_stage(tmp_path: Path) -> None:
    """With --trace, every delivery is timed at each stage, and the stages add up to the latency."""
    document, table = bench(tmp_path, *SHORT, "--trace", "--baseline", "none")
    assert set(document["servers"]) == {"minimess"}
    assert document["ratio"] is None
    median = document["servers"]["minimess"]["median"]
    assert_sane_delivery_figures(median, SHORT_DELIVERIES)
    stages = {row["stage"]: row for row in document["stages"]}
    assert list(stages) == STAGES
    for stage, row in stages.items():
        expected_samples = 20 if stage == "received->accepted" else SHORT_DELIVERIES
        assert row["samples"] == expected_samples, stage
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    # Per delivery the five delivery stages are consecutive slices of send -> receive.
    path = [s for s in STAGES if s != "received->accepted"]
    assert sum(stages[s]["mean_ms"] for s in path) <= median["latency_max_ms"] + 0.001
    assert "where the time goes" in table


def test_idle_connections_measure_memory_per_connection(tmp_path: Path) -> None:
    """With no messages the run only connects, and reports set-up rate and RSS per connection."""
    document, _ = bench(tmp_path, "--subscribers", "200", "--messages", "0", "--rounds", "1")
    for server in document["servers"].values():
        median = server["median"]
        assert median["connections"] == 200
        assert median["connections_per_s"] > 0
        assert median["rss_kib_per_connection"] is not None
        assert median["deliveries"] is None


def test_two_kafka_servers(tmp_path: Path, kafka: KafkaProcess) -> None:
    """--broker kafka starts two servers on the Kafka given; every subscriber on either gets every message."""
    document, _ = bench(
        tmp_path,
        *SHORT,
        *("--broker", "kafka", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic", fresh_kafka_topic()),
        *("--baseline", "none", "--trace"),
    )
    server = document["servers"]["minimess"]
    assert server["name"] == "minimess (kafka)"
    assert_sane_delivery_figures(server["median"], SHORT_DELIVERIES)
    assert [row["stage"] for row in document["stages"]] == STAGES


def test_two_kafka_servers_against_two_bare_kafka_servers(tmp_path: Path, kafka: KafkaProcess) -> None:
    """--baseline kafka runs as many bare websockets-and-aiokafka servers, on a Kafka topic of their
    own: every subscriber of either gets every message, and each server's CPU per message is there
    for both, with the ratios."""
    topic = fresh_kafka_topic()
    document, table = bench(
        tmp_path,
        *TICKING,
        *("--broker", "kafka", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic", topic),
        *("--baseline", "kafka"),
    )
    servers = document["servers"]
    assert (servers["baseline"]["name"], servers["minimess"]["name"]) == ("bare kafka", "minimess (kafka)")
    for server in servers.values():
        median = server["median"]
        assert median["messages_acked"] == 1000
        assert_sane_delivery_figures(median, TICKING_DELIVERIES)
        assert median["cpu_us_per_message_server_1"] > 0
        assert median["cpu_us_per_message_server_2"] is not None
        assert median["cpu_us_per_message_server_3"] is None
    assert document["ratio"]["deliveries"] == 1.0
    assert "publishing µs per message (1 - rest)" in table


def test_publishers_alone_with_no_subscriber(tmp_path: Path) -> None:
    """--subscribers 0 measures the publishers alone: every publish acked, and nothing delivered."""
    document, _ = bench(
        tmp_path, "--subscribers", "0", "--messages", "1000", "--rounds", "1", "--publishers", "2"
    )
    for server in document["servers"].values():
        median = server["median"]
        assert median["connections"] == 0
        assert median["messages_acked"] == 1000
        assert median["publish_errors"] == 0
        assert median["deliveries"] == median["expected_deliveries"] == 0
        assert median["messages_per_s"] > 0
        assert median["cpu_us_per_message"] is not None


def test_batched_frames_are_counted_a_document_a_line(tmp_path: Path) -> None:
    """--batch: clients offer minimess.batch and still count every ack and every delivery, one a
    line (tests/integration/test_batched_frames.py shows the server batching)."""
    document, _ = bench(tmp_path, *TICKING, "--batch", "--baseline", "none")
    median = document["servers"]["minimess"]["median"]
    assert median["messages_acked"] == 1000
    assert_sane_delivery_figures(median, TICKING_DELIVERIES)


def test_through_a_proxy_in_front_of_two_servers(
    tmp_path: Path, kafka: KafkaProcess, start_server: Callable[..., ServerProcess], proxy_kind: str
) -> None:
    """--target measures servers the bench did not start, reading CPU and RSS from each one's /metrics."""
    topic = fresh_kafka_topic()
    s1, s2 = (
        start_server(*kafka_serve_args(kafka, topic, node), "--rate-limit", "0") for node in ("s1", "s2")
    )
    for server in (s1, s2):
        wait_status(server, "/readyz", 200, READY_WITHIN)
    proxy = ProxyProcess(proxy_kind, tmp_path / proxy_kind, [s1.port, s2.port]).start()
    try:
        metrics = [arg for server in (s1, s2) for arg in ("--metrics", server.http_url("/metrics"))]
        document, _ = bench(tmp_path, *TICKING, "--target", proxy.url(), *metrics)
    finally:
        proxy.stop()
    median = document["servers"]["minimess"]["median"]
    assert_sane_delivery_figures(median, TICKING_DELIVERIES)
    assert median["cpu_us_per_delivery"] > 0  # read from the servers' /metrics
    assert document["ratio"]["deliveries"] == 1.0


def test_metrics_from_an_admin_port_with_a_token(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """--metrics-token reads /metrics from a server that keeps it on its admin port behind --admin-token."""
    token = "bench-admin-token"
    server = start_server("--rate-limit", "0", "--admin-port", "0", "--admin-token", token)
    (admin,) = server.logged_so_far("admin_listening")
    metrics_url = f"http://127.0.0.1:{admin['port']}/metrics"
    target = ("--target", server.url(""), "--metrics", metrics_url, "--baseline", "none")
    refused = subprocess.run(
        [sys.executable, "-m", "minimess", "bench", *SHORT, *target],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        env={key: value for key, value in os.environ.items() if key != "MINIMESS_ADMIN_TOKEN"},
    )
    assert refused.returncode == 1
    assert f"cannot read {metrics_url}: HTTP Error 401" in refused.stderr
    document, _ = bench(tmp_path, *TICKING, *target, "--metrics-token", token)
    median = document["servers"]["minimess"]["median"]
    assert_sane_delivery_figures(median, TICKING_DELIVERIES)
    assert median["cpu_us_per_delivery"] > 0


def test_the_old_option_names_still_work(tmp_path: Path, start_server: Callable[..., ServerProcess]) -> None:
    """--stats and --stats-token, from before /metrics, name the same options: without them the
    target's own port, which has no /metrics with --admin-port, would be read."""
    token = "bench-admin-token"
    server = start_server("--rate-limit", "0", "--admin-port", "0", "--admin-token", token)
    (admin,) = server.logged_so_far("admin_listening")
    old = ("--stats", f"http://127.0.0.1:{admin['port']}/metrics", "--stats-token", token)
    document, _ = bench(tmp_path, *SHORT, "--target", server.url(""), *old, "--baseline", "none")
    assert_sane_delivery_figures(document["servers"]["minimess"]["median"], SHORT_DELIVERIES)


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (("--subscribers", "2", "--topics", "3"), 2, "--topics 3 is more than --subscribers 2"),
        (
            ("--target", "ws://127.0.0.1:9/", "--baseline", "none"),
            1,
            "cannot reach ws://127.0.0.1:9/: connection refused",
        ),
    ],
    ids=["more-topics-than-subscribers", "unreachable-target"],
)
def test_a_bad_option_or_target_ends_the_run_with_a_reason(
    args: tuple[str, ...], code: int, reason: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "minimess", "bench", *args], capture_output=True, text=True, timeout=scaled(30)
    )
    assert completed.returncode == code
    assert reason in completed.stderr


def test_never_reading_connections_are_dropped_opened_again_and_the_peak_rss_reported(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """--never-reading keeps N connections that never read through the run: the server drops each
    (a small --queue-bytes, a short close timeout) and the bench opens it again, counting the drops;
    the honest subscribers still get everything, and the server's peak RSS is in the report."""
    server = start_server(
        *("--rate-limit", "0", "--tick", "0", "--queue-bytes", "262144", "--close-timeout", "0.2")
    )
    document, table = bench(
        tmp_path,
        *("--subscribers", "10", "--messages", "1000", "--body-bytes", "8192", "--rounds", "1"),
        # Few publishes in flight, so that the honest subscribers keep within the bound.
        *("--window", "2", "--workers", "1", "--baseline", "none", "--never-reading", "3"),
        *("--target", server.url("")),
    )
    median = document["servers"]["minimess"]["median"]
    assert_sane_delivery_figures(median, 10 * 1000)
    # 8 MB each: more than the bound and the kernel's buffers of a connection together.
    assert median["never_reading_drops"] >= 3
    assert median["server_slow_consumer_closes"] >= median["never_reading_drops"]
    assert median["rss_peak_mib"] > 0
    assert 0 <= median["rss_growth_mib"] < median["rss_peak_mib"]
    assert "never-reading connections dropped" in table
