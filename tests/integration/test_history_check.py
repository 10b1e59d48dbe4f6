"""The history check, short form: recording clients through HAProxy on two Kafka servers, through a
SIGKILL, a SIGTERM, Kafka paused and Kafka restarted; and one memory server restarted twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.history import scenario
from benchmarks.history.checker import summary
from benchmarks.history.faults import FAULTS, Cluster
from benchmarks.history.records import Subscribed
from benchmarks.history.workload import WorkloadSettings
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import ProxyProcess, ProxyUnavailable, find_executable, proxy_unavailable
from tests.integration.server_process import ServerProcess, wait_status
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]

CLIENTS = 6
TOPICS = ("t0", "t1")
# Bounds every wait of a run: a server's start and readiness, the clients' return, the drain.
WITHIN = 30.0
# Acks every client has before the first fault and after each.
ACKS = 10
# --publish-timeout: a publish to a paused Kafka ends this soon, as publish_timeout.
PUBLISH_TIMEOUT = 2.0


def settings() -> WorkloadSettings:
    return WorkloadSettings(topics=TOPICS, pace=0.05, run=f"h{uuid.uuid4().hex[:8]}")


async def test_through_every_fault_each_acked_message_reaches_every_subscriber_once_in_one_order(
    start_kafka: Callable[[], KafkaProcess], start_server: StartServer, tmp_path: Path
) -> None:
    """Kafka, two servers, HAProxy; SIGKILL and SIGTERM of the busier server, Kafka paused, Kafka
    restarted (a Kafka of this test's own, so that no other test depends on its coming back).

    Every acked message reaches every subscriber once, in the order all others saw; no message
    answered broker_unavailable is delivered; one retried with its id is delivered at most once;
    acks carry the offset subscribers see; and no subscriber is ever told `recovered: false`.
    """
    try:
        find_executable("haproxy")
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))
    kafka = await asyncio.to_thread(start_kafka)
    topic = fresh_kafka_topic()
    servers = {}
    for node in ("s1", "s2"):
        args = (*kafka_serve_args(kafka, topic, node), "--publish-timeout", str(PUBLISH_TIMEOUT))
        servers[node] = await asyncio.to_thread(start_server, *args)
    for server in servers.values():
        await asyncio.to_thread(wait_status, server, "/readyz", 200, WITHIN)
    ports = [server.port for server in servers.values()]
    proxy = await asyncio.to_thread(ProxyProcess("haproxy", tmp_path / "haproxy", ports).start)
    try:
        outcome = await scenario.run(
            Cluster(servers, kafka), proxy.url(), CLIENTS, FAULTS, settings(), scaled(WITHIN), acks=ACKS
        )
    finally:
        proxy.stop()
    report = summary(outcome.verdict)
    print(f"{outcome.seconds:.1f} s, faults {list(outcome.faults)}\n{report}")
    assert outcome.stalled is None, f"{outcome.stalled}\n{report}"
    assert outcome.verdict.ok, report
    counts = outcome.verdict.counts
    assert counts.gaps == 0, report
    assert counts.acked > 0
    assert counts.delivered >= counts.expected >= counts.acked * CLIENTS // 2, report


async def test_a_restarted_memory_server_reports_recovered_false_which_the_checker_excuses(
    start_server: StartServer,
) -> None:
    """One memory server, SIGTERM then SIGKILL, each time started again: every subscriber is told
    `recovered: false` in a new epoch once per restart and topic, and nothing else goes wrong."""
    server = await asyncio.to_thread(start_server, "--rate-limit", "0", "--tick", "0", "--node-id", "m1")
    faults = ("sigterm", "sigkill")
    outcome = await scenario.run(
        Cluster({"m1": server}), server.url(""), CLIENTS, faults, settings(), scaled(WITHIN), acks=ACKS
    )
    report = summary(outcome.verdict)
    print(f"{outcome.seconds:.1f} s, faults {list(outcome.faults)}\n{report}")
    assert outcome.stalled is None, f"{outcome.stalled}\n{report}"
    assert outcome.verdict.ok, report
    counts = outcome.verdict.counts
    assert counts.gaps == CLIENTS * len(TOPICS) * len(faults), report
    assert f"gaps reported (recovered: false) {counts.gaps}" in report
    subscriptions = [record for record in outcome.records if isinstance(record, Subscribed)]
    epochs = {record.epoch for record in subscriptions}
    assert len(epochs) == 1 + len(faults), epochs
    assert [s.recovered for s in subscriptions].count(False) == counts.gaps
