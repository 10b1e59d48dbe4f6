"""A Kafka outage in a server's log: a few lines a second at most, the outage said once, its end said too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from devtools import processes
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import LogEvent, ServerProcess
from tests.integration.wire import logged, open_client

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]

# Until a server has connected its Kafka clients.
READY_WITHIN = 20.0
# Lines a server may write in any one second of an outage: aiokafka's, folded and capped, and its own.
MOST_LINES_A_SECOND = 5
# How much of the outage the lines are counted over: long enough for two rounds of folded counts.
OUTAGE_SECONDS = 15.0


def when(event: LogEvent) -> datetime:
    return datetime.fromisoformat(str(event["timestamp"]))


def folded_after(start: datetime, seconds: float) -> Callable[[LogEvent], bool]:
    """A library line that counts repeats (aiokafka folded), written `seconds` or more after `start`."""
    return lambda event: "repeated" in event and (when(event) - start).total_seconds() >= seconds


def assert_few_lines_a_second(events: list[LogEvent], start: datetime, end: datetime) -> None:
    """At most MOST_LINES_A_SECOND lines in any one-second window between `start` and `end`."""
    times = sorted(when(event) for event in events if start <= when(event) <= end)
    for first in times:
        within = [t for t in times if 0 <= (t - first).total_seconds() < 1.0]
        assert len(within) <= MOST_LINES_A_SECOND, (first, [e for e in events if when(e) in within])


async def test_kafka_stopped_under_a_running_server_is_a_few_lines_a_second_and_both_transitions(
    start_kafka: Callable[[], KafkaProcess], start_server: StartServer
) -> None:
    """Kafka stopped for 15 s and more, then started again: aiokafka's errors come as counts every 10 s,
    `kafka_unavailable` once, and the end of the outage with how long it lasted."""
    kafka = await asyncio.to_thread(start_kafka)
    server = start_server(*kafka_serve_args(kafka, fresh_kafka_topic(), "s1"))
    await logged(server, "kafka_connected", within=READY_WITHIN)
    # A client holds a topic, so that the server reads a partition, as a server with clients does:
    # its fetches fail through the outage as well (a server needing no topic reads no partition).
    reader = await open_client(server, "reader", "news")
    await logged(server, "kafka_partitions_assigned", within=READY_WITHIN)

    stopped = datetime.now(UTC)
    await asyncio.to_thread(kafka.stop)
    (unavailable,) = await logged(server, "kafka_unavailable", within=READY_WITHIN)
    assert (unavailable["level"], unavailable["bootstrap"]) == ("warning", kafka.bootstrap)
    # The library's errors, folded: a count of each at the end of every 10 s.
    await asyncio.to_thread(
        server.log.wait_for, folded_after(stopped, OUTAGE_SECONDS), 1, OUTAGE_SECONDS + 20, "folded lines"
    )

    restarted = datetime.now(UTC)
    await asyncio.to_thread(kafka.start)
    (back,) = await asyncio.to_thread(
        server.log.wait_for,
        lambda event: (
            event.get("event") in ("kafka_reachable_again", "kafka_connected") and "down_seconds" in event
        ),
        1,
        READY_WITHIN + 30,
        "the end of the outage",
    )
    # The end is said only once Kafka is back, and `down_seconds` is the outage as the log tells
    # it: from `kafka_unavailable` to this line (to its rounding to a tenth, and the clocks' jitter).
    # How long Kafka took to stop being noticed, or to start again, does not enter into it.
    assert when(back) >= restarted, back
    logged_outage = (when(back) - when(unavailable)).total_seconds()
    assert abs(back["down_seconds"] - logged_outage) <= 0.2, (back, unavailable)
    # So it covers the whole wait for the folded lines: at least from the outage being noticed to
    # Kafka being started again, which came OUTAGE_SECONDS or more after it was stopped.
    assert back["down_seconds"] >= (restarted - when(unavailable)).total_seconds() - 0.2, (back, unavailable)
    assert (restarted - stopped).total_seconds() >= OUTAGE_SECONDS
    events = server.events
    assert_few_lines_a_second(events, stopped, when(back))
    assert [event["event"] for event in events].count("kafka_unavailable") == 1
    # Without folding, aiokafka alone writes about 44 lines a second here.
    counts = [event["repeated"] for event in events if "repeated" in event]
    assert sum(counts) > 100, counts
    await reader.close()


async def test_kafka_absent_at_start_is_said_once_and_retried_quietly(start_server: StartServer) -> None:
    """Nothing on the bootstrap port: `kafka_unavailable` once, then a few lines a second at most."""
    server = start_server(
        "--broker", "kafka", "--kafka-bootstrap", f"127.0.0.1:{processes.free_port()}", "--kafka-topic", "t"
    )
    (unavailable,) = await logged(server, "kafka_unavailable", within=READY_WITHIN)
    started = when(unavailable)
    # A retry a second: by the time aiokafka's refusals are counted once, ten attempts were made.
    folded = await asyncio.to_thread(server.log.wait_for, folded_after(started, 9.0), 1, 30, "folded lines")
    assert folded[0]["repeated"] >= 5, folded
    events = server.events
    assert_few_lines_a_second(events, started, when(events[-1]))
    assert [event["event"] for event in events].count("kafka_unavailable") == 1
