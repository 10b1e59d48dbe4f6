"""/stats: the node's name beside the summary of its metrics, the bus's counts and the process's figures
in objects of their own."""

from __future__ import annotations

import json

from minimess.adapters.websocket_server.stats import SERVER_COUNTERS, stats_document
from minimess.domain.metrics import MetricsSummary

SUMMARY = MetricsSummary(
    connections=2,
    deliveries=40,
    frames_dropped=5,
    connections_opened=3,
    connections_closed=1,
    messages_published=2,
    slow_consumer_closes=1,
    inactive_closes=1,
    error_frames=3,
    rate_limited=2,
    internal_errors=1,
    repeats_skipped=1,
    recoveries=3,
    recoveries_failed=1,
    history_messages=6,
    broker={"undecodable_records": 2, "replays": 4},
    cpu_seconds=1.25,
    rss_bytes=50_000_000,
)


def test_the_document_is_the_node_and_the_summary_with_the_bus_and_the_process_apart() -> None:
    document = stats_document("node-1", SUMMARY)
    assert document == {
        "node": "node-1",
        "connections": 2,
        "deliveries": 40,
        "frames_dropped": 5,
        "connections_opened": 3,
        "connections_closed": 1,
        "messages_published": 2,
        "slow_consumer_closes": 1,
        "inactive_closes": 1,
        "error_frames": 3,
        "rate_limited": 2,
        "internal_errors": 1,
        "repeats_skipped": 1,
        "recoveries": 3,
        "recoveries_failed": 1,
        "history_messages": 6,
        "broker": {"undecodable_records": 2, "replays": 4},
        "process": {"cpu_seconds": 1.25, "rss_bytes": 50_000_000},
    }
    assert json.loads(json.dumps(document)) == document
    assert set(SERVER_COUNTERS) <= set(document)
