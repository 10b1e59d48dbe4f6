"""A server's metrics in a Prometheus registry of its own: events counted as they come, the rest at scrape."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minimess.app.messaging import MessagingCounters
from minimess.domain.metrics import MetricsSummary, QueuedBytes
from minimess.domain.ports import BusHealth

PUBLISH_RESULTS = ("ack", "forbidden", "id_reused", "broker_unavailable", "publish_timeout")
"""How a publish can be answered: the label values of minimess_messages_published_total."""

ERROR_CODES = (
    "bad_frame",
    "unknown_type",
    "bad_topic",
    "too_many_topics",
    "rate_limited",
    "forbidden",
    "id_reused",
    "broker_unavailable",
    "publish_timeout",
)
"""The protocol's error codes (docs/protocol.md): their series exist from the start, at 0."""

# A client picks the code of its own close frame (any of 1000-4999): taken as a label value as it
# is, it could make thousands of series, which a server keeps until it stops.
CLOSE_CODES = (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 4000, 4001)
"""The close codes the server, websockets or the protocol use: each has a series of
minimess_connections_closed_total from the start, at 0; any other code counts as `other`."""

OTHER_CLOSE_CODE = "other"

# From a tenth of a millisecond (a publish on the memory bus, a small fan-out) up to the
# publish timeout's default of 5 s (Kafka unreachable).
SECONDS_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# The bus's counters (BusHealth.counters) that have a family of their own, with its labels.
_SKIPPED = {
    "undecodable_records": "undecodable",
    "invalid_records": "invalid",
    "unneeded_records": "not_needed",
}

# Each count of MetricsSummary: the sample it reads, and the labels it is summed over (all when none).
_COUNTS: dict[str, tuple[str, Mapping[str, str]]] = {
    "connections": ("minimess_connections", {}),
    "deliveries": ("minimess_deliveries_total", {}),
    "frames_dropped": ("minimess_frames_dropped_total", {}),
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
# The bus's own counts, in MetricsSummary.broker when the bus keeps them (Kafka).
_BUS_COUNTS: dict[str, tuple[str, Mapping[str, str]]] = {
    "undecodable_records": ("minimess_kafka_records_skipped_total", {"reason": "undecodable"}),
    "invalid_records": ("minimess_kafka_records_skipped_total", {"reason": "invalid"}),
    "unneeded_records": ("minimess_kafka_records_skipped_total", {"reason": "not_needed"}),
    "replays": ("minimess_kafka_replays_total", {}),
    "reconnects": ("minimess_kafka_reconnects_total", {}),
}


@attrs.frozen
class ScrapeSources:
    """Where the figures that are counted elsewhere are read from, at every scrape."""

    # The service's counters: connections open, deliveries, recoveries, history.
    counters: Callable[[], MessagingCounters]
    # Readiness, the bus's own counters and Kafka consumer lag.
    health: BusHealth
    # What the open connections hold for their clients.
    queued: Callable[[], QueuedBytes]


class PrometheusMetrics:
    """The Metrics port on prometheus_client, and the text /metrics serves.

    Events move Counters and Histograms (children resolved once, so that an event costs one
    locked add); the figures counted elsewhere as plain ints are read by a collector when
    scraped. `sources` is called at each scrape, not before: the objects it reads are built
    after the metrics they report to. The registry is this object's own, not prometheus_client's
    global one, so that two servers in one process (tests) never share a number.

    Collecting runs on the event loop and costs time in proportion to the connections (the
    process collector lists every open descriptor, the bytes held are summed over every
    connection): the registry is collected at most once per `max_age` seconds of `clock`, and
    /metrics and /stats are rendered from that collection, whoever asks and however often.
    """

    def __init__(
        self,
        sources: Callable[[], ScrapeSources] | None = None,
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        # The last collection, served again until it is `max_age` old; None before the first.
        self._collected: _Collection | None = None
        # No `_created` series beside every counter and histogram: Prometheus takes each for a gauge
        # of its own. prometheus_client (0.26) has no switch per registry, only this one for the
        # whole process, read at each collection (a global switch is its maintainers' choice, in
        # client_python#973). That is safe here: the only registries in a minimess process are
        # those of PrometheusMetrics, which all want it off; nothing uses the library's global one.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        registry = self.registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        self._opened = Counter(
            "minimess_connections_opened", "WebSocket connections accepted.", registry=registry
        )
        closed = Counter(
            "minimess_connections_closed",
            "Connections ended, by close code (the server's and the protocol's; `other` for the rest).",
            ["code"],
            registry=registry,
        )
        self._closed = {code: closed.labels(str(code)) for code in CLOSE_CODES}
        self._closed_other = closed.labels(OTHER_CLOSE_CODE)
        self._frames_dropped = Counter(
            "minimess_frames_dropped",
            "Frames pushed to connections that never reached their sockets, counted when each closed:"
            " refused once it stopped taking frames (a slow consumer's), or still held at its close.",
            registry=registry,
        )
        published = self._published_counter = Counter(
            "minimess_messages_published",
            "Publishes answered: ack, or the error code that refused them.",
            ["result"],
            registry=registry,
        )
        self._published = {result: published.labels(result) for result in PUBLISH_RESULTS}
        self._error_frames = Counter(
            "minimess_error_frames",
            "Error frames sent to clients, by error code.",
            ["code"],
            registry=registry,
        )
        self._error_children = {code: self._error_frames.labels(code) for code in ERROR_CODES}
        self._slow_consumers = Counter(
            "minimess_slow_consumer_closes",
            "Connections closed (4000) because their client did not keep up.",
            registry=registry,
        )
        self._inactive = Counter(
            "minimess_inactive_closes",
            "Connections closed because their client stopped answering pings.",
            registry=registry,
        )
        self._internal_errors = Counter(
            "minimess_internal_errors", "Connections closed (1011) by a bug in the server.", registry=registry
        )
        self._publish_seconds = Histogram(
            "minimess_publish_seconds",
            "From a pub frame read to the bus's acceptance, for acked publishes.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self._fanout_seconds = Histogram(
            "minimess_fanout_seconds",
            "Per message, from the bus's delivery to the end of the event-loop turn that wrote its frames"
            " to the last local socket that took them.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        if sources is not None:
            registry.register(_ScrapedFigures(sources))

    def connection_opened(self) -> None:
        self._opened.inc()

    def connection_closed(self, code: int, frames_dropped: int) -> None:
        self._closed.get(code, self._closed_other).inc()
        if frames_dropped:
            self._frames_dropped.inc(frames_dropped)

    def publish_answered(self, result: str, seconds: float) -> None:
        child = self._published.get(result)
        if child is None:
            child = self._published_counter.labels(result)
        child.inc()
        if result == "ack":
            self._publish_seconds.observe(seconds)

    def error_frame_sent(self, code: str) -> None:
        child = self._error_children.get(code)
        if child is None:
            child = self._error_frames.labels(code)
        child.inc()

    def slow_consumer_closed(self) -> None:
        self._slow_consumers.inc()

    def inactive_closed(self) -> None:
        self._inactive.inc()

    def internal_error(self) -> None:
        self._internal_errors.inc()

    def fanned_out(self, seconds: float) -> None:
        self._fanout_seconds.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """Every metric in the Prometheus text format (as collected at most `max_age` ago), and that
        format's content type."""
        return self._collection().exposition, CONTENT_TYPE_PLAIN_0_0_4

    def summary(self, fresh: bool = False) -> MetricsSummary:
        """The main figures, read from the samples that /metrics shows: one source of numbers.

        As collected at most `max_age` ago; `fresh`: collected now.
        """
        return self._collection(fresh).summary

    def _collection(self, fresh: bool = False) -> _Collection:
        now = self._clock()
        collected = self._collected
        if fresh or collected is None or now - collected.taken >= self._max_age:
            collected = self._collected = _Collection(now, list(self.registry.collect()))
        return collected


class _Collection(Collector):
    """The metric families of one collection of the registry, and what is rendered from them, once each."""

    def __init__(self, taken: float, families: list[Metric]) -> None:
        # When it was collected, by the metrics' clock.
        self.taken = taken
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families

    @functools.cached_property
    def exposition(self) -> bytes:
        return generate_latest(self)

    @functools.cached_property
    def summary(self) -> MetricsSummary:
        return summary_of(self._families)


class _ScrapedFigures(Collector):
    """The figures counted elsewhere as plain ints, turned into metric families when scraped."""

    def __init__(self, sources: Callable[[], ScrapeSources]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        sources = self._sources()
        counters = sources.counters()
        queued = sources.queued()
        yield GaugeMetricFamily(
            "minimess_connections", "WebSocket connections open now.", value=counters.connections
        )
        yield CounterMetricFamily(
            "minimess_deliveries", "Message frames handed to local subscribers.", value=counters.deliveries
        )
        yield GaugeMetricFamily(
            "minimess_outbound_queued_bytes",
            "Bytes the open connections hold for their clients, their sockets' write buffers included.",
            value=queued.total,
        )
        yield GaugeMetricFamily(
            "minimess_outbound_queued_bytes_max",
            "The most bytes one connection holds for its client.",
            value=queued.worst,
        )
        yield GaugeMetricFamily(
            "minimess_broker_ready",
            "1 while the bus is expected to take publishes and deliver, else 0.",
            value=1 if sources.health.is_ready() else 0,
        )
        recoveries = CounterMetricFamily(
            "minimess_recoveries",
            "Subscriptions with a position, by whether every message after it was replayed.",
            labels=["result"],
        )
        recoveries.add_metric(["recovered"], counters.recoveries - counters.recoveries_failed)
        recoveries.add_metric(["failed"], counters.recoveries_failed)
        yield recoveries
        yield CounterMetricFamily(
            "minimess_repeats_skipped",
            "Messages from the bus skipped because the history held their id from their sender.",
            value=counters.repeats_skipped,
        )
        yield GaugeMetricFamily(
            "minimess_history_messages", "Messages the history holds now.", value=counters.history_messages
        )
        yield from _bus_families(sources.health.counters(), sources.health.lag())


def _bus_families(bus: Mapping[str, int], lag: Mapping[int, int]) -> Iterator[Metric]:
    """The Kafka bus's figures; a counter the bus does not keep (the memory bus keeps none) is left out."""
    lagging = GaugeMetricFamily(
        "minimess_kafka_consumer_lag",
        "Records of each partition this server has not read yet, as of the last probe of Kafka;"
        " none while the bus is not ready.",
        labels=["partition"],
    )
    for partition, records in sorted(lag.items()):
        lagging.add_metric([str(partition)], records)
    yield lagging
    if any(name in bus for name in _SKIPPED):
        skipped = CounterMetricFamily(
            "minimess_kafka_records_skipped",
            "Records read from Kafka and skipped, by reason: undecodable, invalid (out of bounds),"
            " or not_needed (of a topic without a local subscriber or recent publish, passed over unread).",
            labels=["reason"],
        )
        for name, reason in _SKIPPED.items():
            skipped.add_metric([reason], bus.get(name, 0))
        yield skipped
    if "reconnects" in bus:
        yield CounterMetricFamily(
            "minimess_kafka_reconnects",
            "Times new Kafka clients were made after a failure.",
            value=bus["reconnects"],
        )
    if "replays" in bus:
        yield CounterMetricFamily(
            "minimess_kafka_replays", "Recoveries that read Kafka back.", value=bus["replays"]
        )


def summary_of(families: Iterable[Metric]) -> MetricsSummary:
    """The main figures, from the metric families of one collection of the registry."""
    by_name: dict[str, list[tuple[Mapping[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append((sample.labels, sample.value))

    def total(name: str, labels: Mapping[str, str]) -> int:
        return int(sum(value for have, value in by_name.get(name, ()) if labels.items() <= have.items()))

    cpu = by_name.get("process_cpu_seconds_total")
    rss = by_name.get("process_resident_memory_bytes")
    return MetricsSummary(
        **{field: total(name, labels) for field, (name, labels) in _COUNTS.items()},
        broker={
            field: total(name, labels) for field, (name, labels) in _BUS_COUNTS.items() if name in by_name
        },
        # Left out by the process collector where /proc is missing.
        cpu_seconds=cpu[0][1] if cpu else None,
        rss_bytes=int(rss[0][1]) if rss else None,
    )
