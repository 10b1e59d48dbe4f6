"""How `minimess bench` spreads its load: subscribers over topics, servers and workers."""

from __future__ import annotations

import contextlib
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minimess.bench import run
from minimess.bench.publisher import PublishPlan, PublishReport, combined, publisher_uid
from minimess.bench.run import message_metrics, messages_per_topic, subscriber_urls, topic_names
from minimess.bench.servers import Sample
from minimess.bench.settings import MAX_KAFKA_SERVERS, BenchSettings
from minimess.bench.workers import STAGES, _add_stages


def test_messages_go_round_robin_over_topics() -> None:
    assert messages_per_topic(10, 3) == [4, 3, 3]
    assert messages_per_topic(0, 2) == [0, 0]
    assert sum(messages_per_topic(7, 7)) == 7


def test_every_topic_has_subscribers_on_every_server() -> None:
    """With 2 servers and an even number of topics, each topic still spans both servers."""
    servers = ["ws://a", "ws://b"]
    per_worker = subscriber_urls(servers, topic_names(2), subscribers=8, workers=3)
    urls = [url for worker in per_worker for url in worker]
    assert len(urls) == len(set(urls)) == 8
    pairs = Counter((url.split("/subscribe")[0], url.rsplit("topic:", 1)[1]) for url in urls)
    assert pairs == {("ws://a", "t0"): 2, ("ws://a", "t1"): 2, ("ws://b", "t0"): 2, ("ws://b", "t1"): 2}


def test_workers_get_equal_shares() -> None:
    """Subscribers are dealt to workers in turn, so shares differ by one at most."""
    per_worker = subscriber_urls(["ws://a"], topic_names(1), subscribers=10, workers=3)
    assert [len(worker) for worker in per_worker] == [4, 3, 3]
    assert per_worker[0][0] == "ws://a/subscribe/id:b0/topic:t0"


def test_more_topics_than_subscribers_is_refused() -> None:
    """A topic nobody subscribes to would only measure publishing; say so instead."""
    with pytest.raises(ValueError, match="--topics"):
        BenchSettings(subscribers=2, topics=3)


def test_the_kafka_baseline_needs_the_kafka_broker() -> None:
    with pytest.raises(ValueError, match="'baseline' kafka needs --broker kafka"):
        BenchSettings(baseline="kafka")


def test_with_no_subscriber_nothing_connected_over_no_time() -> None:
    """--subscribers 0 starts no worker: connecting measured nothing, and says so without failing."""
    assert run.connect_metrics([], 0, 0, fresh=True) == {
        "connections": 0,
        "connect_failures": 0,
        "connections_per_s": None,
        "rss_kib_per_connection": None,
    }


def test_unknown_broker_is_refused() -> None:
    """Only memory and kafka can be started."""
    with pytest.raises(ValueError, match="broker"):
        BenchSettings(broker="redis")


def test_a_traced_delivery_adds_one_sample_per_stage() -> None:
    """Stamps sent..written and the receive time give five intervals, in order."""
    stages: dict[str, array[int]] = {stage: array("q") for stage in STAGES}
    trace = {"sent": 100, "received": 150, "delivered": 160, "queued": 170, "written": 200}
    _add_stages(stages, trace, now_us=260)
    assert {stage: list(values) for stage, values in stages.items()} == {
        "sent->received": [50],
        "received->delivered": [10],
        "delivered->queued": [10],
        "queued->written": [30],
        "written->client": [60],
    }


@pytest.mark.parametrize(
    "trace",
    [None, "x", {"sent": None, "received": 1, "delivered": 2, "queued": 3, "written": 4}, {"sent": 1}],
)
def test_an_incomplete_trace_adds_nothing(trace: object) -> None:
    """A message without every stamp (published by an untraced server) is left out of the breakdown."""
    stages: dict[str, array[int]] = {stage: array("q") for stage in STAGES}
    _add_stages(stages, trace, now_us=10)
    assert all(not values for values in stages.values())


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"server_ports": ("9001",)}, "must give 2 port"),  # memory and the baseline: two servers
        ({"server_ports": ("9001", "9001")}, "must be different ports"),
        ({"server_ports": ("9001", "x")}, "must be ports 1-65535, got 'x'"),
        ({"server_ports": ("9001", "70000")}, "must be ports 1-65535"),
        ({"server_ports": ("9001",), "broker": "kafka", "baseline": "none"}, "must give 2 port"),
        ({"server_ports": ("9001", "9002"), "broker": "kafka", "kafka_servers": 3}, "must give 4 port"),
        # As many bare Kafka servers as minimess servers.
        (
            {"server_ports": ("9001", "9002", "9003"), "broker": "kafka", "baseline": "kafka"},
            "must give 4 port",
        ),
    ],
)
def test_server_ports_must_be_one_valid_port_per_started_server(given: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=f"^'server_ports' {reason}"):
        BenchSettings(**given)


@pytest.mark.parametrize(
    ("given", "minimess_ports", "baseline_ports"),
    [
        ({"server_ports": ("9001", "9002")}, [(9001,)], [9002]),
        ({"server_ports": ("9001", "9002", "9003"), "broker": "kafka"}, [(9001, 9002)], [9003]),
        (
            {
                "server_ports": ("9001", "9002", "9003"),
                "broker": "kafka",
                "kafka_servers": 3,
                "baseline": "none",
            },
            [(9001, 9002, 9003)],
            [],
        ),
        (
            {"server_ports": ("9001", "9002", "9003", "9004"), "broker": "kafka", "baseline": "kafka"},
            [(9001, 9002)],
            [(9003, 9004)],
        ),
        ({"broker": "kafka", "baseline": "kafka", "kafka_servers": 3}, [()], [()]),
        ({"server_ports": ("9001",), "baseline": "none"}, [(9001,)], []),
        ({"server_ports": ("9009",), "target": "ws://127.0.0.1:1"}, [], [9009]),
        ({}, [()], [None]),
    ],
)
def test_the_started_servers_take_the_server_ports_in_order(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    given: dict[str, Any],
    minimess_ports: list[tuple[int, ...]],
    baseline_ports: list[int | tuple[int, ...] | None],
) -> None:
    """The minimess servers first (one on memory, two on kafka), then the bare baseline (kafka's: as many)."""
    started: dict[str, list[Any]] = {"minimess": [], "baseline": []}

    @contextlib.contextmanager
    def minimess(*args: Any, kafka_servers: int) -> Iterator[None]:
        started["minimess"].append(tuple(args[5]))
        assert kafka_servers == settings.kafka_servers
        yield

    @contextlib.contextmanager
    def baseline(_design: str, _log_dir: Path, port: int | None = None) -> Iterator[None]:
        started["baseline"].append(port)
        yield

    @contextlib.contextmanager
    def kafka_baseline(
        _bootstrap: str, _topic: str, _log_dir: Path, ports: Any, servers: int
    ) -> Iterator[None]:
        started["baseline"].append(tuple(ports))
        assert servers == settings.kafka_servers
        yield

    monkeypatch.setattr(run, "started_minimess", minimess)
    monkeypatch.setattr(run, "started_baseline", baseline)
    monkeypatch.setattr(run, "started_kafka_baseline", kafka_baseline)
    settings = BenchSettings(**given)
    # A target is not started (and not faked here): only the baseline then.
    keys = ["minimess"] if settings.target is None else []
    keys += [] if settings.baseline == "none" else ["baseline"]
    for key in keys:
        with run.servers_for(key, settings, tmp_path):
            pass
    assert started == {"minimess": minimess_ports, "baseline": baseline_ports}


def test_the_servers_get_equal_shares_of_the_subscribers_even_with_as_many_topics() -> None:
    """10 subscribers on 10 topics over 2 servers: 5 on each, so that each server's CPU per message
    counts the same fan-out (the publishing server's extra is then its publishing alone)."""
    per_worker = subscriber_urls(["ws://a", "ws://b"], topic_names(10), subscribers=10, workers=2)
    servers = Counter(url.split("/subscribe")[0] for worker in per_worker for url in worker)
    assert servers == {"ws://a": 5, "ws://b": 5}


def test_with_three_servers_every_topic_has_subscribers_on_each() -> None:
    servers = ["ws://a", "ws://b", "ws://c"]
    per_worker = subscriber_urls(servers, topic_names(4), subscribers=12, workers=2)
    pairs = Counter((url.split("/subscribe")[0], url.rsplit("topic:", 1)[1]) for w in per_worker for url in w)
    assert pairs == {(server, topic): 1 for server in servers for topic in topic_names(4)}


@pytest.mark.parametrize("kafka_servers", [1, MAX_KAFKA_SERVERS + 1])
def test_kafka_servers_out_of_range_are_refused(kafka_servers: int) -> None:
    with pytest.raises(ValueError, match="kafka_servers"):
        BenchSettings(broker="kafka", kafka_servers=kafka_servers)


@pytest.mark.parametrize(("messages", "publishers"), [(10, 3), (2, 5), (0, 2), (7, 1)])
def test_publishers_share_the_messages_each_once_on_its_topic(messages: int, publishers: int) -> None:
    """Publisher j sends messages j, j + N, ...: together every message once, on topic number mod T."""
    plan = PublishPlan(("t0", "t1", "t2"), messages, rate=0, body_bytes=64, window=4, answer_timeout=1)
    shares = [plan.for_publisher(share, publishers) for share in range(publishers)]
    numbers = sorted(number for share in shares for number in share.numbers)
    assert numbers == list(range(messages))
    assert [len(share.numbers) for share in shares] == [
        messages // publishers + (share < messages % publishers) for share in range(publishers)
    ]
    assert len({publisher_uid(share) for share in range(publishers)}) == publishers


def test_the_publishers_reports_add_up_from_the_first_start_to_the_last_answer() -> None:
    first = PublishReport(
        acked=3, errors=Counter(publish_timeout=1), unanswered=1, started=10.0, finished=12.0
    )
    second = PublishReport(acked=5, started=9.5, finished=11.0, accept_us=array("q", [7]))
    total = combined([first, second])
    assert (total.acked, total.errors, total.unanswered) == (8, Counter(publish_timeout=1), 1)
    assert (total.started, total.finished, list(total.accept_us)) == (9.5, 12.0, [7])


def test_cpu_per_message_per_server_and_the_publishing_servers_extra() -> None:
    """The publishing server's CPU per message less the mean of the others' is its publishing cost."""
    published = PublishReport(acked=1000, started=100.0, finished=102.0)
    start = Sample(10.0, 0, cpu_seconds_by_server=(5.0, 3.0, 2.0))
    end = Sample(10.75, 0, cpu_seconds_by_server=(5.35, 3.2, 2.2))
    metrics = message_metrics(published, start, end)
    assert metrics == pytest.approx(
        {
            "messages_per_s": 500.0,
            "cpu_us_per_message": 750.0,
            "cpu_us_per_message_server_1": 350.0,
            "cpu_us_per_message_server_2": 200.0,
            "cpu_us_per_message_server_3": 200.0,
            "publishing_us_per_message": 150.0,
        }
    )


def test_one_server_has_no_per_server_rows() -> None:
    published = PublishReport(acked=10, started=1.0, finished=2.0)
    metrics = message_metrics(
        published,
        Sample(1.0, 0, cpu_seconds_by_server=(1.0,)),
        Sample(1.001, 0, cpu_seconds_by_server=(1.001,)),
    )
    assert set(metrics) == {"messages_per_s", "cpu_us_per_message"}


def test_behind_a_target_no_server_is_the_publishing_one() -> None:
    """With --target the proxy picks each publisher's server: each server's rows, but no extra."""
    published = PublishReport(acked=10, started=1.0, finished=2.0)
    start = Sample(2.0, 0, cpu_seconds_by_server=(1.0, 1.0))
    end = Sample(2.002, 0, cpu_seconds_by_server=(1.001, 1.001))
    metrics = message_metrics(published, start, end, first_publishes=False)
    assert set(metrics) == {
        "messages_per_s",
        "cpu_us_per_message",
        "cpu_us_per_message_server_1",
        "cpu_us_per_message_server_2",
    }
