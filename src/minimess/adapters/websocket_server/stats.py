"""What the server needs of its metrics, and /stats: the node's name and its metrics' summary as JSON."""

from __future__ import annotations

from typing import Protocol

import attrs

from minimess.domain.metrics import Metrics, MetricsSummary

SERVER_COUNTERS = (
    "connections_opened",
    "connections_closed",
    "messages_published",
    "slow_consumer_closes",
    "inactive_closes",
    "error_frames",
    "rate_limited",
    "internal_errors",
    "frames_dropped",
)
"""The /stats fields that count what happened to the server's connections (its stop line logs them)."""

# Summary fields shown in objects of their own, not beside the counts.
_NESTED = ("broker", "cpu_seconds", "rss_bytes")


class ServedMetrics(Metrics, Protocol):
    """The Metrics port, and the figures it has gathered, as /metrics and /stats serve them."""

    def exposition(self) -> tuple[bytes, str]:
        """Every metric in a text format, and that format's content type; rendered at most once per
        --metrics-max-age, whoever asks."""
        ...

    def summary(self, fresh: bool = False) -> MetricsSummary:
        """The main figures, as /metrics last showed them; `fresh`: as of now."""
        ...


def stats_document(node: str, summary: MetricsSummary) -> dict[str, object]:
    """The /stats object: the node's name, its counts, the bus's own counts and the process's figures."""
    figures = attrs.asdict(summary)
    return {
        "node": node,
        **{name: value for name, value in figures.items() if name not in _NESTED},
        "broker": dict(summary.broker),
        "process": {"cpu_seconds": summary.cpu_seconds, "rss_bytes": summary.rss_bytes},
    }
