"""The storm: three Kafka servers behind HAProxy, 1,000 clients, one server killed, every client back.

The scenario is benchmarks/storm_scenario.py's (benchmarks/storm.py times it); here, what every
client ends with: recovered from its own position, each message of its topic exactly once, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.storm_scenario import KILLED, Storm
from tests.integration.kafka_process import KafkaProcess
from tests.integration.proxy_process import ProxyUnavailable, find_executable, proxy_unavailable

pytestmark = pytest.mark.integration

CLIENTS = 1000
TOPICS = 4
# 20 messages a second, each to 250 clients: 5,000 deliveries a second through the test's own loop.
PUBLISH_INTERVAL = 0.05
BEFORE_KILL = 20
AFTER_RECOVERY = 20


async def test_a_thousand_clients_come_back_recovered_after_a_server_is_killed(
    kafka: KafkaProcess, tmp_path: Path
) -> None:
    """SIGKILL one of three servers while messages flow: each client it held reconnects through HAProxy
    with its position and is answered `recovered: true`; no client is refused (the two servers left
    have room for all under --max-connections); every client, displaced or not, ends with every
    message of its topic exactly once and in order."""
    try:
        find_executable("haproxy")
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))
    storm = Storm(kafka, tmp_path, CLIENTS, TOPICS)
    with storm.cluster():
        result = await storm.run(PUBLISH_INTERVAL, BEFORE_KILL, AFTER_RECOVERY)

    # Least connections spread the clients: the killed server held about a third of them.
    assert CLIENTS // 5 <= len(result.displaced) <= CLIENTS // 2, len(result.displaced)
    assert all(subscriber.node is None or subscriber.node != KILLED for subscriber in result.subscribers)
    for subscriber in result.displaced:
        # Every subscription made with a position after the kill was a recovery, none a gap.
        assert [recovered for at, recovered in subscriber.recoveries if at >= result.killed_at] != []
        assert all(recovered for _, recovered in subscriber.recoveries), subscriber.uid
    displaced = {subscriber.uid for subscriber in result.displaced}
    stayed = [subscriber for subscriber in result.subscribers if subscriber.uid not in displaced]
    assert [subscriber.uid for subscriber in stayed if subscriber.losses] == []
    assert result.publish_errors == []
    assert sum(len(offsets) for offsets in result.acked.values()) >= BEFORE_KILL + AFTER_RECOVERY
    assert result.problems() == []
    # No cap was reached: no client was refused, and no server logged a refusal.
    assert [subscriber.uid for subscriber in result.subscribers if subscriber.refusals] == []
    assert result.server_refusals == {"s1": 0, "s2": 0, "s3": 0}
