"""The metrics a server serves, and /stats: a JSON view of the same samples /metrics shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from minimess.domain.metrics import Metrics

MetricSample = tuple[str, Mapping[str, str], float]
"""One sample of the metrics: its name (with its suffix, as in /metrics), its labels, its value."""

# /stats field -> the sample it shows, and the labels it is summed over (all of them when none).
_COUNTS: dict[str, tuple[str, Mapping[str, str]]] = {
    "connections": ("minimess_connections", {}),
    "deliveries": ("minimess_deliveries_total", {}),
    "connections_opened": ("minimess_connections_opened_total", {}),
    "connections_closed": ("minimess_connections_closed_total", {}),
    "messages_published": ("minimess_messages_published_total", {"result": "ack"}),
    "slow_consumer_closes": ("minimess_slow_consumer_closes_total", {}),
    "inactive_closes": ("minimess_inactive_closes_total", {}),
    "error_frames": ("minimess_error_frames_total", {}),
    "rate_limited": ("minimess_error_frames_total", {"code": "rate_limited"}),
    "internal_errors": ("minimess_internal_errors_total", {}),
    "repeats_skipped": ("minimess_repeats_skipped_total", {}),
    "recoveries": ("minimess_recoveries_total", {}),
    "recoveries_failed": ("minimess_recoveries_total", {"result": "failed"}),
    "history_messages": ("minimess_history_messages", {}),
}
# The bus's own figures, shown only when the bus keeps them (Kafka).
_BROKER_COUNTS: dict[str, tuple[str, Mapping[str, str]]] = {
    "undecodable_records": ("minimess_kafka_records_skipped_total", {"reason": "undecodable"}),
    "invalid_records": ("minimess_kafka_records_skipped_total", {"reason": "invalid"}),
    "replays": ("minimess_kafka_replays_total", {}),
    "reconnects": ("minimess_kafka_reconnects_total", {}),
}

SERVER_COUNTERS = (
    "connections_opened",
    "connections_closed",
    "messages_published",
    "slow_consumer_closes",
    "inactive_closes",
    "error_frames",
    "rate_limited",
    "internal_errors",
)
"""The /stats fields that count what happened to the server's connections (its stop line logs them)."""


class ServedMetrics(Metrics, Protocol):
    """The Metrics port, and the figures it has gathered, as /metrics and /stats serve them."""

    def exposition(self) -> tuple[bytes, str]:
        """Every metric in a text format, and that format's content type."""
        ...

    def samples(self) -> Iterable[MetricSample]:
        """Every sample now."""
        ...


def stats_document(node: str, samples: Iterable[MetricSample]) -> dict[str, object]:
    """The /stats object: the node's name and its figures, read from the samples of its metrics."""
    by_name: dict[str, list[tuple[Mapping[str, str], float]]] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))

    def total(name: str, labels: Mapping[str, str]) -> float:
        return sum(value for have, value in by_name.get(name, ()) if labels.items() <= have.items())

    cpu = by_name.get("process_cpu_seconds_total")
    rss = by_name.get("process_resident_memory_bytes")
    return {
        "node": node,
        **{field: int(total(name, labels)) for field, (name, labels) in _COUNTS.items()},
        "broker": {
            field: int(total(name, labels))
            for field, (name, labels) in _BROKER_COUNTS.items()
            if name in by_name
        },
        # The process's CPU time so far and its resident memory now; None where /proc is missing.
        "process": {
            "cpu_seconds": cpu[0][1] if cpu else None,
            "rss_bytes": int(rss[0][1]) if rss else None,
        },
    }
