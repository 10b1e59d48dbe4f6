"""Two or three `minimess serve --broker kafka` processes on a real Kafka, as clients see them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from websockets.asyncio.client import ClientConnection

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.broker import partition_of
from minimess.adapters.kafka.envelope import Envelope
from minimess.domain.model import Message, Topic, Uid
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import logged, next_frame, open_client, publish, scrape, send_frame, stats
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

PARTITIONS = 3
TOPIC = "room"
MESSAGES = 500
# Until a server answers /readyz 200: it creates the Kafka topic and connects its clients first.
READY_WITHIN = 20.0
# Slack on top of --publish-timeout for a refused publish: scheduling, the frame's round trip.
PUBLISH_MARGIN = 1.5
# --publish-timeout of the servers in the outage tests.
PUBLISH_TIMEOUT = 2.0

StartServer = Callable[..., ServerProcess]


async def answers(server: ServerProcess, path: str, status: int, within: float) -> None:
    await asyncio.to_thread(wait_status, server, path, status, within)


async def publish_id(connection: ClientConnection, body: str, ref: str) -> str:
    """Publish `body` on TOPIC and wait for its ack; the message id."""
    return str((await publish(connection, TOPIC, body, ref))["id"])


async def next_message(connection: ClientConnection, within: float = 15.0) -> dict[str, Any]:
    return await next_frame(connection, "message", within=within)


async def refused(connection: ClientConnection, body: str, ref: str, deadline: float) -> str:
    """Publish with an id while Kafka is unusable: answered within the deadline, by `broker_unavailable`
    (not published) or `publish_timeout` (handed to Kafka, outcome unknown); the code."""
    started = time.monotonic()
    await send_frame(connection, type="pub", topic=TOPIC, body=body, ref=ref, id=message_id(ref))
    frame = await next_frame(connection, within=deadline + PUBLISH_MARGIN + 5)
    took = time.monotonic() - started
    assert frame["type"] == "error", frame
    assert frame["code"] in ("broker_unavailable", "publish_timeout"), frame
    assert frame["ref"] == ref, frame
    assert took < deadline + scaled(PUBLISH_MARGIN), f"refused after {took:.2f} s, deadline {deadline} s"
    return str(frame["code"])


def message_id(ref: str) -> str:
    """The client's id for the publish with this ref."""
    return f"client-id-of-{ref}"


def garbage_records() -> list[bytes | None]:
    """Record values that are not minimess envelopes: noise, a tombstone, and a cut-off envelope."""
    message = Message.create(Topic(TOPIC), Uid("intruder"), "cut off", datetime.now(UTC))
    whole = envelope.encode(Envelope(message=message, origin_node="nowhere"))
    return [b"\xff\x00 this is not thrift \x00\xff", None, whole[: len(whole) // 2]]


@attrs.frozen
class FlowingCluster:
    """Servers s1 and s2 on one Kafka topic, a watcher of TOPIC on each, and a publisher on s1."""

    topic: str
    s1: ServerProcess
    s2: ServerProcess
    watchers: list[ClientConnection]
    publisher: ClientConnection


@asynccontextmanager
async def flowing_cluster(
    start_server: StartServer, kafka: KafkaProcess, *extra: str
) -> AsyncIterator[FlowingCluster]:
    """Two ready servers on a fresh Kafka topic, handed over once a first message reached both watchers."""
    topic = fresh_kafka_topic()
    s1, s2 = (
        start_server(*kafka_serve_args(kafka, topic, node, PARTITIONS), *extra) for node in ("s1", "s2")
    )
    for server in (s1, s2):
        await answers(server, "/readyz", 200, READY_WITHIN)
    watchers = [await open_client(server, f"watcher-{n}", TOPIC) for n, server in enumerate((s1, s2))]
    publisher = await open_client(s1, "publisher")
    try:
        first = await publish_id(publisher, "before", "before")
        for watcher in watchers:
            assert (await next_message(watcher))["id"] == first
        yield FlowingCluster(topic, s1, s2, watchers, publisher)
    finally:
        await asyncio.gather(*(connection.close() for connection in [*watchers, publisher]))


async def test_500_messages_reach_subscribers_on_both_servers_once_each_in_publish_order(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """500 publishes on server 1: 500 acks, and the subscribers on either server get all 500, in order."""
    async with flowing_cluster(start_server, kafka) as cluster:
        publisher = cluster.publisher

        async def send_all() -> None:
            # Pipelined: the server handles a connection's frames one after the other anyway.
            for number in range(MESSAGES):
                await send_frame(publisher, type="pub", topic=TOPIC, body=f"m{number}", ref=str(number))

        async def acks() -> list[str]:
            ids = []
            for number in range(MESSAGES):
                ack = await next_frame(publisher, "ack")
                assert ack["ref"] == str(number), ack
                ids.append(str(ack["id"]))
            return ids

        async def received(connection: ClientConnection) -> list[dict[str, Any]]:
            return [await next_message(connection) for _ in range(MESSAGES)]

        async with asyncio.timeout(scaled(90)):
            _, acked, *deliveries = await asyncio.gather(
                send_all(), acks(), *(received(connection) for connection in cluster.watchers)
            )
        assert len(set(acked)) == MESSAGES
        bodies = [f"m{number}" for number in range(MESSAGES)]
        for frames in deliveries:
            assert [frame["id"] for frame in frames] == acked
            assert [frame["body"] for frame in frames] == bodies
            assert {(frame["from"], frame["topic"]) for frame in frames} == {("publisher", TOPIC)}
        # A duplicate would come after the 500: what follows them must be the next message.
        marker = await publish_id(publisher, "marker", "marker")
        for connection in cluster.watchers:
            assert (await next_message(connection))["id"] == marker


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_kafka_outage_refuses_publishes_in_time_and_delivery_resumes_without_restart(
    start_kafka: Callable[[], KafkaProcess], start_server: StartServer, outage: str
) -> None:
    """Kafka stopped or frozen: publishes end within --publish-timeout, /readyz is 503; Kafka back,
    messages flow again. A `broker_unavailable` publish is never delivered; a `publish_timeout` one,
    sent again with its id, is delivered exactly once."""
    kafka = await asyncio.to_thread(start_kafka)
    async with flowing_cluster(start_server, kafka, "--publish-timeout", str(PUBLISH_TIMEOUT)) as cluster:
        servers, publisher = (cluster.s1, cluster.s2), cluster.publisher
        # Frozen rather than stopped, the broker still looks ready for a probe or two: the first
        # publish reaches the Kafka producer and has to end at the deadline.
        await asyncio.to_thread(kafka.stop if outage == "stopped" else kafka.pause)
        # At once, while the servers may still believe Kafka is there ...
        codes = {"during-1": await refused(publisher, "refused 1", "during-1", PUBLISH_TIMEOUT)}
        for server in servers:
            await answers(server, "/readyz", 503, READY_WITHIN)
            await answers(server, "/healthz", 200, 5)
        # ... and once they know it is not: nothing is handed to Kafka any more.
        codes["during-2"] = await refused(publisher, "refused 2", "during-2", PUBLISH_TIMEOUT)
        assert codes["during-2"] == "broker_unavailable"

        # Stopped, it starts again in the same folder on the same port.
        await asyncio.to_thread(kafka.start if outage == "stopped" else kafka.resume)
        for server in servers:
            await answers(server, "/readyz", 200, READY_WITHIN)
        # What the client does with an unknown outcome: send it again, with the same id.
        unknown = [ref for ref, code in codes.items() if code == "publish_timeout"]
        for ref in unknown:
            await send_frame(publisher, type="pub", topic=TOPIC, body="again", ref=ref, id=message_id(ref))
            assert (await next_frame(publisher, "ack"))["id"] == message_id(ref)
        resumed = await publish_id(publisher, "after the outage", "after")
        for watcher in cluster.watchers:
            delivered: list[str] = []
            while not delivered or delivered[-1] != resumed:
                delivered.append(str((await next_message(watcher, within=30))["id"]))
            assert sorted(delivered) == sorted([resumed, *map(message_id, unknown)]), codes


async def test_a_garbage_record_on_the_kafka_topic_is_logged_skipped_and_disturbs_nothing(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """Records that are not envelopes, in the topic's partition: both servers log and skip them and go on."""
    async with flowing_cluster(start_server, kafka) as cluster:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            # Keyed like minimess's own records, so they sit in the partition the next messages use.
            written = [
                await producer.send_and_wait(cluster.topic, value=value, key=TOPIC.encode())
                for value in garbage_records()
            ]
        finally:
            await producer.stop()

        after = [
            await publish_id(cluster.publisher, f"after the garbage {n}", f"after-{n}") for n in range(3)
        ]
        for watcher in cluster.watchers:
            assert [(await next_message(watcher))["id"] for _ in after] == after
        for server in (cluster.s1, cluster.s2):
            for record in written:
                await logged(server, "kafka_record_skipped", partition=record.partition, offset=record.offset)
            assert (await stats(server))["broker"]["undecodable_records"] == len(written)
            metrics = await scrape(server.http_url("/metrics"))
            assert metrics.value("minimess_kafka_records_skipped_total", reason="undecodable") == len(written)
            assert metrics.value("minimess_broker_ready") == 1
            lag = metrics.series("minimess_kafka_consumer_lag")
            # Reported for the partitions read: the one holding TOPIC, the only topic used.
            partition = partition_of(Topic(TOPIC), PARTITIONS)
            assert {dict(labels)["partition"] for labels in lag} == {str(partition)}
            assert all(records >= 0 for records in lag.values())


async def test_servers_writing_either_envelope_protocol_share_the_topic_as_halfway_through_an_upgrade(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """s1 with --kafka-envelope-protocol compact (what servers before the binary protocol read), s2
    binary: a message published on either reaches the subscribers on both, and none is skipped."""
    topic = fresh_kafka_topic()
    s1 = start_server(
        *kafka_serve_args(kafka, topic, "s1", PARTITIONS), "--kafka-envelope-protocol", "compact"
    )
    s2 = start_server(*kafka_serve_args(kafka, topic, "s2", PARTITIONS))
    for server in (s1, s2):
        await answers(server, "/readyz", 200, READY_WITHIN)
    watchers = [await open_client(server, f"watcher-{n}", TOPIC) for n, server in enumerate((s1, s2))]
    publishers = [await open_client(server, f"publisher-{n}") for n, server in enumerate((s1, s2))]
    try:
        for n, publisher in enumerate(publishers):
            sent = await publish_id(publisher, f"from s{n + 1}", f"from-{n}")
            for watcher in watchers:
                assert (await next_message(watcher))["id"] == sent
        for server in (s1, s2):
            assert (await stats(server))["broker"]["undecodable_records"] == 0
    finally:
        await asyncio.gather(*(connection.close() for connection in [*watchers, *publishers]))
    # On the bus: s1's record in the compact protocol (field 1's header 0x15), s2's in binary (0x08).
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, partition_of(Topic(TOPIC), PARTITIONS))
        consumer.assign([partition])
        values: list[bytes] = []
        async with asyncio.timeout(scaled(15)):
            while len(values) < len(publishers):
                batch = await consumer.getmany(partition, timeout_ms=1000)
                values += [record.value or b"" for record in batch.get(partition, [])]
    finally:
        await consumer.stop()
    assert [value[:1] for value in values] == [b"\x15", b"\x08"]
