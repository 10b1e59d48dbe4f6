"""The figures of a benchmark run: per-round metrics, medians, ratios, stage breakdown, table, JSON."""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from minimess.bench.settings import MAX_KAFKA_SERVERS
from minimess.bench.workers import STAGES

# Every metric of a round, its label in the table, and its format.
METRICS: dict[str, tuple[str, str]] = {
    "connections": ("connections open", "{:,.0f}"),
    "connect_failures": ("connections failed", "{:,.0f}"),
    "connections_per_s": ("connection set-up /s", "{:,.0f}"),
    "rss_kib_per_connection": ("server RSS per connection KiB", "{:,.1f}"),
    "messages_acked": ("messages acked", "{:,.0f}"),
    "publish_errors": ("publish errors", "{:,.0f}"),
    "deliveries": ("deliveries", "{:,.0f}"),
    "expected_deliveries": ("deliveries expected", "{:,.0f}"),
    "deliveries_per_s": ("deliveries /s", "{:,.0f}"),
    "cpu_us_per_delivery": ("server CPU per delivery µs", "{:,.2f}"),
    "subscriber_cpu_us_per_delivery": ("subscribers' CPU per delivery µs", "{:,.2f}"),
    "messages_per_frame": ("messages per frame (subscribers)", "{:,.2f}"),
    "messages_per_s": ("messages /s (publishing)", "{:,.0f}"),
    "cpu_us_per_message": ("server CPU per message µs (all)", "{:,.1f}"),
    **{
        f"cpu_us_per_message_server_{number}": (f"server {number} CPU per message µs", "{:,.1f}")
        for number in range(1, MAX_KAFKA_SERVERS + 1)
    },
    "publishing_us_per_message": ("publishing µs per message (1 - rest)", "{:,.1f}"),
    "latency_p50_ms": ("latency p50 ms", "{:,.2f}"),
    "latency_p90_ms": ("latency p90 ms", "{:,.2f}"),
    "latency_p99_ms": ("latency p99 ms", "{:,.2f}"),
    "latency_max_ms": ("latency max ms", "{:,.2f}"),
    "slow_consumer_closes": ("slow-consumer closes (4000)", "{:,.0f}"),
    "rss_peak_mib": ("server RSS peak MiB", "{:,.1f}"),
    "rss_growth_mib": ("server RSS peak - before MiB", "{:,.1f}"),
    "never_reading_drops": ("never-reading connections dropped", "{:,.0f}"),
    "server_slow_consumer_closes": ("slow-consumer closes, server's count", "{:,.0f}"),
    "other_closes": ("other closes", "{:,.0f}"),
}

STAGE_LABELS = {
    "sent->received": "client send -> server receive",
    "received->accepted": "server receive -> broker accepted (ack)",
    "received->delivered": "server receive -> broker delivered",
    "delivered->queued": "broker delivered -> queued for the writer",
    "queued->written": "queued -> written to the socket",
    "written->client": "written -> client receive",
}


@attrs.define
class RoundResult:
    """One round against one server: its metrics, and the raw stage times (µs) for the breakdown."""

    metrics: dict[str, float | None]
    stages_us: dict[str, array[int]] = attrs.field(factory=dict)


def percentile(ordered: Sequence[int] | Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending sequence (fraction 0.99 for p99)."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, -(-len(ordered) * fraction // 1))
    return float(ordered[min(len(ordered), int(rank)) - 1])


def latency_metrics(latencies_us: Iterable[int]) -> dict[str, float | None]:
    ordered = sorted(latencies_us)
    if not ordered:
        return {f"latency_{name}_ms": None for name in ("p50", "p90", "p99", "max")}
    return {
        "latency_p50_ms": percentile(ordered, 0.50) / 1000,
        "latency_p90_ms": percentile(ordered, 0.90) / 1000,
        "latency_p99_ms": percentile(ordered, 0.99) / 1000,
        "latency_max_ms": ordered[-1] / 1000,
    }


def medians(rounds: Sequence[RoundResult]) -> dict[str, float | None]:
    """Each metric's median over the rounds that have it."""
    summary: dict[str, float | None] = {}
    for metric in METRICS:
        values = [value for r in rounds if (value := r.metrics.get(metric)) is not None]
        summary[metric] = statistics.median(values) if values else None
    return summary


def ratios(ours: Mapping[str, float | None], baseline: Mapping[str, float | None]) -> dict[str, float | None]:
    """minimess / baseline for every metric both have (and the baseline's is not zero)."""
    result: dict[str, float | None] = {}
    for metric in METRICS:
        a, b = ours.get(metric), baseline.get(metric)
        result[metric] = a / b if a is not None and b else None
    return result


def stage_breakdown(rounds: Sequence[RoundResult]) -> list[dict[str, Any]]:
    """Percentiles of every stage, over every delivery of every round, in milliseconds."""
    rows = []
    for stage in ("sent->received", "received->accepted", *STAGES[1:]):
        values = sorted(v for r in rounds for v in r.stages_us.get(stage, ()))
        if not values:
            continue
        rows.append(
            {
                "stage": stage,
                "label": STAGE_LABELS[stage],
                "samples": len(values),
                "p50_ms": percentile(values, 0.50) / 1000,
                "p90_ms": percentile(values, 0.90) / 1000,
                "p99_ms": percentile(values, 0.99) / 1000,
                "mean_ms": statistics.fmean(values) / 1000,
            }
        )
    return rows


def render_table(
    title: str,
    columns: Mapping[str, Mapping[str, float | None]],
    ratio: Mapping[str, float | None] | None,
    unmeasurable: Collection[str] = (),
) -> str:
    """The metrics as a fixed-width table: one column per server, then minimess/baseline.

    A metric that is None is shown `-` (nothing to measure this run), or `n/a` if `unmeasurable`
    names it (it cannot be measured honestly on these servers), and then its row is never left out.
    """
    width = max(len(label) for label, _ in METRICS.values()) + 2
    column = max(14, *(len(name) + 2 for name in columns))
    header = f"{'':<{width}}" + "".join(f"{name:>{column}}" for name in columns)
    if ratio is not None:
        header += f"{'ratio':>8}"
    lines = [title, header]
    for metric, (label, fmt) in METRICS.items():
        missing = "n/a" if metric in unmeasurable else "-"
        if metric not in unmeasurable and all(summary.get(metric) is None for summary in columns.values()):
            continue
        line = f"{label:<{width}}"
        for summary in columns.values():
            value = summary.get(metric)
            line += f"{missing if value is None else fmt.format(value):>{column}}"
        if ratio is not None:
            value = ratio.get(metric)
            line += f"{'-' if value is None else f'{value:.2f}':>8}"
        lines.append(line)
    return "\n".join(lines)


def render_stages(rows: Sequence[Mapping[str, Any]]) -> str:
    """Where a message's time goes, stage by stage (from a --trace run)."""
    width = max(len(label) for label in STAGE_LABELS.values()) + 2
    lines = [
        "where the time goes (minimess --trace), ms",
        f"{'':<{width}}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}",
    ]
    for row in rows:
        lines.append(
            f"{row['label']:<{width}}"
            + "".join(f"{row[key]:>9.3f}" for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"))
        )
    return "\n".join(lines)
