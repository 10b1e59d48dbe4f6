"""The Prometheus metrics: the names, types and labels operators rely on, one event one count, and the
figures read at scrape (the service's, the bus's, the connections'), and their summary, which /stats shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minimess.adapters.prometheus_metrics import PrometheusMetrics, ScrapeSources
from minimess.app.messaging import MessagingCounters
from minimess.domain.metrics import MetricsSummary, QueuedBytes

# The families of issue 13, as a scrape shows them: name (without _total), type, label names.
FAMILIES = {
    "minimess_connections": ("gauge", ()),
    "minimess_connections_opened": ("counter", ()),
    "minimess_connections_closed": ("counter", ("code",)),
    "minimess_frames_dropped": ("counter", ()),
    "minimess_messages_published": ("counter", ("result",)),
    "minimess_deliveries": ("counter", ()),
    "minimess_error_frames": ("counter", ("code",)),
    "minimess_slow_consumer_closes": ("counter", ()),
    "minimess_inactive_closes": ("counter", ()),
    "minimess_internal_errors": ("counter", ()),
    "minimess_outbound_queued_bytes": ("gauge", ()),
    "minimess_outbound_queued_bytes_max": ("gauge", ()),
    "minimess_publish_seconds": ("histogram", ()),
    "minimess_fanout_seconds": ("histogram", ()),
    "minimess_broker_ready": ("gauge", ()),
    "minimess_kafka_consumer_lag": ("gauge", ("partition",)),
    "minimess_kafka_records_skipped": ("counter", ("reason",)),
    "minimess_kafka_reconnects": ("counter", ()),
    "minimess_kafka_replays": ("counter", ()),
    "minimess_recoveries": ("counter", ("result",)),
    "minimess_repeats_skipped": ("counter", ()),
    "minimess_history_messages": ("gauge", ()),
}
KAFKA_COUNTERS = {
    "undecodable_records": 2,
    "invalid_records": 1,
    "unneeded_records": 5,
    "replays": 4,
    "reconnects": 3,
}

SampleKey = tuple[str, frozenset[tuple[str, str]]]


@attrs.define
class StubHealth:
    ready: bool = True
    counted: Mapping[str, int] = attrs.field(factory=dict)
    lagging: Mapping[int, int] = attrs.field(factory=dict)

    def is_ready(self) -> bool:
        return self.ready

    def counters(self) -> Mapping[str, int]:
        return self.counted

    def lag(self) -> Mapping[int, int]:
        return self.lagging


NO_COUNTS = MessagingCounters(
    connections=0,
    deliveries=0,
    repeats_skipped=0,
    recoveries=0,
    recoveries_failed=0,
    history_messages=0,
    bus={},
)


@attrs.define
class Figures:
    """What the service and the connections would answer at scrape; tests set them."""

    counters: MessagingCounters = NO_COUNTS
    health: StubHealth = attrs.field(factory=StubHealth)
    queued: QueuedBytes = attrs.field(factory=lambda: QueuedBytes(total=0, worst=0))
    scrapes: int = 0

    def sources(self) -> ScrapeSources:
        self.scrapes += 1
        return ScrapeSources(counters=lambda: self.counters, health=self.health, queued=lambda: self.queued)


def metrics_on(figures: Figures) -> PrometheusMetrics:
    return PrometheusMetrics(sources=figures.sources)


def minimess_samples(metrics: PrometheusMetrics) -> dict[SampleKey, float]:
    """The minimess samples (the process and GC ones move by themselves), by name and labels."""
    return {
        (name, frozenset(labels.items())): value
        for family in metrics.registry.collect()
        for name, labels, value, *_ in family.samples
        if name.startswith("minimess_")
    }


def scraped(metrics: PrometheusMetrics) -> dict[str, tuple[str, set[str], set[str]]]:
    """What a Prometheus server reads in /metrics: family name -> type, label names, sample names."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(body.decode()):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        families[family.name] = (family.type, labels, {sample.name for sample in family.samples})
    return families


def test_every_family_has_its_name_type_and_labels_and_the_standard_collectors_are_there() -> None:
    figures = Figures(health=StubHealth(counted=KAFKA_COUNTERS, lagging={0: 5}))
    metrics = metrics_on(figures)
    metrics.connection_closed(1000, 0)
    families = scraped(metrics)
    minimess = {name: (kind, tuple(sorted(labels))) for name, (kind, labels, _) in families.items()}
    assert {name: shape for name, shape in minimess.items() if name.startswith("minimess_")} == FAMILIES
    assert families["minimess_connections_opened"][2] == {"minimess_connections_opened_total"}
    assert families["minimess_publish_seconds"][2] == {
        "minimess_publish_seconds_bucket",
        "minimess_publish_seconds_count",
        "minimess_publish_seconds_sum",
    }
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= set(families)
    assert "python_gc_collections" in families


def test_every_result_and_error_code_has_a_series_from_the_start() -> None:
    samples = minimess_samples(metrics_on(Figures()))
    results = {
        dict(labels)["result"] for name, labels in samples if name == "minimess_messages_published_total"
    }
    assert results == {"ack", "forbidden", "id_reused", "broker_unavailable", "publish_timeout"}
    codes = {dict(labels)["code"] for name, labels in samples if name == "minimess_error_frames_total"}
    # Every error code of docs/protocol.md.
    assert codes == {
        "bad_frame",
        "unknown_type",
        "bad_topic",
        "too_many_topics",
        "forbidden",
        "broker_unavailable",
        "publish_timeout",
        "id_reused",
        "rate_limited",
    }
    counted = ("minimess_messages_published_total", "minimess_error_frames_total")
    assert all(value == 0 for (name, _), value in samples.items() if name in counted)


def test_every_close_code_of_the_server_and_the_protocol_has_a_series_from_the_start() -> None:
    samples = minimess_samples(metrics_on(Figures()))
    codes = {dict(labels)["code"] for name, labels in samples if name == "minimess_connections_closed_total"}
    assert codes == {
        *("1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1010", "1011"),
        *("4000", "4001", "other"),
    }


@pytest.mark.parametrize("code", [3000, 3999, 4002, 4999, 1004, 1012, 1015, 2000, 0])
def test_a_close_code_a_client_chose_is_counted_as_other_and_makes_no_series(code: int) -> None:
    metrics = metrics_on(Figures())
    series = len(minimess_samples(metrics))
    metrics.connection_closed(code, 0)
    metrics.connection_closed(code, 0)
    assert len(minimess_samples(metrics)) == series
    value = metrics.registry.get_sample_value
    assert value("minimess_connections_closed_total", {"code": "other"}) == 2
    assert value("minimess_connections_closed_total", {"code": str(code)}) is None


EVENTS: list[tuple[str, Callable[[PrometheusMetrics], None], SampleKey]] = [
    ("opened", lambda m: m.connection_opened(), ("minimess_connections_opened_total", frozenset())),
    (
        "closed",
        lambda m: m.connection_closed(1000, 0),
        ("minimess_connections_closed_total", frozenset({("code", "1000")})),
    ),
    (
        "refused",
        lambda m: m.publish_answered("id_reused", 0.01),
        ("minimess_messages_published_total", frozenset({("result", "id_reused")})),
    ),
    (
        "error frame",
        lambda m: m.error_frame_sent("bad_frame"),
        ("minimess_error_frames_total", frozenset({("code", "bad_frame")})),
    ),
    (
        "new error code",
        lambda m: m.error_frame_sent("made_up"),
        ("minimess_error_frames_total", frozenset({("code", "made_up")})),
    ),
    ("slow", lambda m: m.slow_consumer_closed(), ("minimess_slow_consumer_closes_total", frozenset())),
    ("inactive", lambda m: m.inactive_closed(), ("minimess_inactive_closes_total", frozenset())),
    ("internal", lambda m: m.internal_error(), ("minimess_internal_errors_total", frozenset())),
]


@pytest.mark.parametrize(
    ("event", "key"), [(event, key) for _, event, key in EVENTS], ids=[e[0] for e in EVENTS]
)
def test_an_event_moves_its_count_by_one_and_nothing_else(
    event: Callable[[PrometheusMetrics], None], key: SampleKey
) -> None:
    metrics = metrics_on(Figures())
    before = minimess_samples(metrics)
    event(metrics)
    after = minimess_samples(metrics)
    moved = {sample: after[sample] - before.get(sample, 0.0) for sample in after}
    assert {sample: change for sample, change in moved.items() if change} == {key: 1.0}


def test_a_closed_connection_adds_its_dropped_frames_and_the_close_counts_once() -> None:
    metrics = metrics_on(Figures())
    metrics.connection_closed(4000, 37)
    metrics.connection_closed(1000, 0)
    metrics.connection_closed(1006, 2)
    value = metrics.registry.get_sample_value
    assert value("minimess_frames_dropped_total") == 39
    assert value("minimess_connections_closed_total", {"code": "4000"}) == 1
    assert value("minimess_connections_closed_total", {"code": "1006"}) == 1


def test_an_acked_publish_is_counted_and_timed_and_a_refused_one_only_counted() -> None:
    metrics = metrics_on(Figures())
    metrics.publish_answered("ack", 0.003)
    metrics.publish_answered("broker_unavailable", 5.0)
    value = metrics.registry.get_sample_value
    assert value("minimess_messages_published_total", {"result": "ack"}) == 1
    assert value("minimess_messages_published_total", {"result": "broker_unavailable"}) == 1
    assert value("minimess_publish_seconds_count") == 1
    assert value("minimess_publish_seconds_sum") == pytest.approx(0.003)
    assert value("minimess_publish_seconds_bucket", {"le": "0.0025"}) == 0
    assert value("minimess_publish_seconds_bucket", {"le": "0.005"}) == 1


def test_fan_outs_are_observed_in_their_histogram() -> None:
    metrics = metrics_on(Figures())
    for seconds in (0.0002, 0.0008, 0.02):
        metrics.fanned_out(seconds)
    value = metrics.registry.get_sample_value
    assert value("minimess_fanout_seconds_count") == 3
    assert value("minimess_fanout_seconds_bucket", {"le": "0.001"}) == 2
    assert value("minimess_fanout_seconds_bucket", {"le": "+Inf"}) == 3


def test_the_figures_counted_elsewhere_are_read_at_each_scrape_and_not_before() -> None:
    figures = Figures()
    metrics = metrics_on(figures)
    assert figures.scrapes == 0
    figures.counters = MessagingCounters(
        connections=7,
        deliveries=70,
        repeats_skipped=2,
        recoveries=5,
        recoveries_failed=1,
        history_messages=9,
        bus={},
    )
    figures.queued = QueuedBytes(total=3000, worst=2048)
    figures.health.ready = False
    samples = minimess_samples(metrics)
    assert figures.scrapes == 1
    unlabelled = {name: value for (name, labels), value in samples.items() if not labels}
    assert {
        "minimess_connections": 7,
        "minimess_deliveries_total": 70,
        "minimess_repeats_skipped_total": 2,
        "minimess_history_messages": 9,
        "minimess_outbound_queued_bytes": 3000,
        "minimess_outbound_queued_bytes_max": 2048,
        "minimess_broker_ready": 0,
    }.items() <= unlabelled.items()
    recoveries = {
        dict(labels)["result"]: value
        for (name, labels), value in samples.items()
        if name == "minimess_recoveries_total"
    }
    assert recoveries == {"recovered": 4, "failed": 1}
    figures.counters = attrs.evolve(figures.counters, deliveries=71)
    assert metrics.registry.get_sample_value("minimess_deliveries_total") == 71


def test_the_kafka_families_show_lag_per_partition_records_skipped_by_reason_and_reconnects() -> None:
    health = StubHealth(counted=KAFKA_COUNTERS, lagging={2: 0, 0: 5})
    value = metrics_on(Figures(health=health)).registry.get_sample_value
    assert value("minimess_kafka_consumer_lag", {"partition": "0"}) == 5
    assert value("minimess_kafka_consumer_lag", {"partition": "2"}) == 0
    assert value("minimess_kafka_consumer_lag", {"partition": "1"}) is None
    assert value("minimess_kafka_records_skipped_total", {"reason": "undecodable"}) == 2
    assert value("minimess_kafka_records_skipped_total", {"reason": "invalid"}) == 1
    assert value("minimess_kafka_records_skipped_total", {"reason": "not_needed"}) == 5
    assert value("minimess_kafka_reconnects_total") == 3
    assert value("minimess_kafka_replays_total") == 4
    assert value("minimess_broker_ready") == 1


def test_a_bus_that_keeps_no_counters_has_no_kafka_counters_and_an_empty_lag() -> None:
    families = scraped(metrics_on(Figures()))
    assert families["minimess_kafka_consumer_lag"] == ("gauge", set(), set())
    assert not {
        "minimess_kafka_records_skipped",
        "minimess_kafka_reconnects",
        "minimess_kafka_replays",
    } & set(families)


@attrs.define
class ManualClock:
    """A monotonic clock that moves only when told."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_within_the_max_age_metrics_and_stats_are_served_from_one_collection() -> None:
    figures, clock = Figures(), ManualClock()
    metrics = PrometheusMetrics(sources=figures.sources, max_age=1.0, clock=clock)
    first, content_type = metrics.exposition()
    metrics.connection_opened()
    figures.counters = attrs.evolve(NO_COUNTS, connections=1)
    clock.now += 0.999
    again, _ = metrics.exposition()
    summary = metrics.summary()
    # One collection for all three: the connections' bytes and the process's descriptors read once.
    assert figures.scrapes == 1
    assert again is first
    assert (summary.connections_opened, summary.connections) == (0, 0)
    assert content_type.startswith("text/plain; version=0.0.4")

    clock.now += 0.001
    later, _ = metrics.exposition()
    assert figures.scrapes == 2
    assert b"minimess_connections_opened_total 1.0" in later
    assert metrics.summary().connections == 1
    assert figures.scrapes == 2


def test_a_fresh_summary_is_collected_now_and_serves_from_then_on() -> None:
    figures, clock = Figures(), ManualClock()
    metrics = PrometheusMetrics(sources=figures.sources, clock=clock)
    metrics.exposition()
    metrics.connection_opened()
    assert metrics.summary(fresh=True).connections_opened == 1
    assert figures.scrapes == 2
    assert b"minimess_connections_opened_total 1.0" in metrics.exposition()[0]
    assert figures.scrapes == 2


def test_with_a_max_age_of_0_every_request_is_collected() -> None:
    figures = Figures()
    metrics = PrometheusMetrics(sources=figures.sources, max_age=0)
    metrics.exposition()
    metrics.connection_opened()
    assert b"minimess_connections_opened_total 1.0" in metrics.exposition()[0]
    assert metrics.summary().connections_opened == 1
    assert figures.scrapes == 3


def test_two_servers_in_one_process_share_no_number() -> None:
    first, second = metrics_on(Figures()), metrics_on(Figures())
    first.connection_opened()
    assert first.registry.get_sample_value("minimess_connections_opened_total") == 1
    assert second.registry.get_sample_value("minimess_connections_opened_total") == 0


def test_the_summary_is_read_from_the_same_samples() -> None:
    figures = Figures(health=StubHealth(counted=KAFKA_COUNTERS))
    figures.counters = MessagingCounters(
        connections=2,
        deliveries=40,
        repeats_skipped=1,
        recoveries=3,
        recoveries_failed=1,
        history_messages=6,
        bus=KAFKA_COUNTERS,
    )
    metrics = metrics_on(figures)
    for _ in range(3):
        metrics.connection_opened()
    metrics.connection_closed(1000, 0)
    metrics.connection_closed(4000, 5)
    metrics.publish_answered("ack", 0.001)
    metrics.publish_answered("ack", 0.001)
    metrics.publish_answered("forbidden", 0.001)
    metrics.error_frame_sent("forbidden")
    metrics.error_frame_sent("rate_limited")
    metrics.error_frame_sent("rate_limited")
    metrics.slow_consumer_closed()
    metrics.inactive_closed()
    metrics.internal_error()
    value = metrics.registry.get_sample_value

    summary = metrics.summary()

    assert summary == MetricsSummary(
        connections=2,
        deliveries=40,
        frames_dropped=5,
        connections_opened=3,
        connections_closed=2,
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
        broker=KAFKA_COUNTERS,
        cpu_seconds=summary.cpu_seconds,
        rss_bytes=summary.rss_bytes,
    )
    # The same numbers as the registry's, which /metrics shows.
    assert summary.messages_published == value("minimess_messages_published_total", {"result": "ack"})
    assert summary.rate_limited == value("minimess_error_frames_total", {"code": "rate_limited"})
    assert summary.deliveries == value("minimess_deliveries_total")
    # Read a moment before the registry's own: the process's CPU time only grows meanwhile.
    cpu_seconds = value("process_cpu_seconds_total")
    assert summary.cpu_seconds is not None
    assert cpu_seconds is not None
    assert 0 < summary.cpu_seconds <= cpu_seconds
    assert summary.rss_bytes is not None
    assert summary.rss_bytes > 0


def test_the_summary_of_a_bus_without_counters_has_no_bus_counts() -> None:
    assert metrics_on(Figures()).summary().broker == {}
