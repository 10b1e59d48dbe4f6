"""`minimess bench --publishers N` and `--kafka-servers N` as a user runs them, against real servers.

Smoke tests: every message is delivered once to every subscriber of its topic and every figure is
there; how fast anything was is what the benchmark reports, never what a test asserts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic
from tests.integration.test_bench import assert_sane_delivery_figures, bench

pytestmark = pytest.mark.integration


def test_three_publishers_on_memory_send_every_message_once(tmp_path: Path) -> None:
    """30 subscribers on 3 topics, 300 messages from 3 connections: each subscriber gets its 100."""
    document, table = bench(
        tmp_path,
        *("--publishers", "3", "--window", "8", "--subscribers", "30", "--topics", "3"),
        *("--messages", "300", "--rounds", "1", "--workers", "2", "--baseline", "none"),
    )
    median = document["servers"]["minimess"]["median"]
    assert median["messages_acked"] == 300
    assert_sane_delivery_figures(median, 30 * 100)
    assert median["messages_per_s"] > 0
    assert median["cpu_us_per_message"] >= 0
    # One server: no per-server rows.
    assert median["cpu_us_per_message_server_1"] is None
    assert "messages /s (publishing)" in table


def test_three_kafka_servers_each_report_their_cpu_per_message(tmp_path: Path, kafka: KafkaProcess) -> None:
    """--kafka-servers 3: subscribers on all three get every message of their topic, and the report has
    each server's CPU per message and the publishing server's extra."""
    document, table = bench(
        tmp_path,
        *("--broker", "kafka", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic", fresh_kafka_topic()),
        *("--kafka-servers", "3", "--publishers", "2", "--subscribers", "6", "--topics", "2"),
        *("--messages", "200", "--rounds", "1", "--workers", "2", "--baseline", "none"),
    )
    server = document["servers"]["minimess"]
    median = server["median"]
    assert median["messages_acked"] == 200
    # Subscriber i is on server (i mod 2 + i div 2) mod 3: each topic has subscribers on all three.
    assert_sane_delivery_figures(median, 6 * 100)
    for number in (1, 2, 3):
        assert median[f"cpu_us_per_message_server_{number}"] >= 0
        assert f"server {number} CPU per message µs" in table
    assert median["cpu_us_per_message_server_4"] is None
    assert median["publishing_us_per_message"] is not None
    assert "publishing µs per message (1 - rest)" in table
