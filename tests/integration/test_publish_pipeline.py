"""One connection publishing without waiting for its acks, through real servers on the memory bus
and on a real Kafka: every frame answered in the order sent, each topic's messages on the bus in it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
from websockets.asyncio.client import ClientConnection

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import next_frame, open_client, send_frame
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

MESSAGES = 500
TOPICS = ("left", "right")
READY_WITHIN = 20.0

StartServer = Callable[..., ServerProcess]


@attrs.frozen
class Servers:
    """Where the publisher publishes, and where its topics' subscribers are (another server on Kafka)."""

    publishing: ServerProcess
    receiving: ServerProcess


@pytest.fixture(params=["memory", "kafka"])
def servers(request: pytest.FixtureRequest, start_server: StartServer) -> Servers:
    if request.param == "memory":
        server = start_server("--rate-limit", "0", "--tick", "0")
        return Servers(server, server)
    kafka: KafkaProcess = request.getfixturevalue("kafka")
    topic = fresh_kafka_topic()
    s1, s2 = (start_server(*kafka_serve_args(kafka, topic, node)) for node in ("s1", "s2"))
    for server in (s1, s2):
        wait_status(server, "/readyz", 200, READY_WITHIN)
    return Servers(s1, s2)


@asynccontextmanager
async def clients(servers: Servers) -> AsyncIterator[tuple[ClientConnection, list[ClientConnection]]]:
    """A publisher, and a subscriber of each topic on the receiving server, each seen to receive."""
    publisher = await open_client(servers.publishing, "publisher")
    subscribers = [await open_client(servers.receiving, f"reader-{topic}", topic) for topic in TOPICS]
    try:
        # A first message through each topic: the receiving server is on the bus.
        for number, (topic, subscriber) in enumerate(zip(TOPICS, subscribers, strict=True)):
            await send_frame(publisher, type="pub", topic=topic, body="first", ref=f"first-{number}")
            assert (await next_frame(publisher, "ack", within=30))["ref"] == f"first-{number}"
            assert (await next_frame(subscriber, "message", within=30))["body"] == "first"
        yield publisher, subscribers
    finally:
        await asyncio.gather(*(client.close() for client in [publisher, *subscribers]))


async def answers(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_frame(connection, within=30) for _ in range(count)]


async def test_500_publishes_sent_without_waiting_are_acked_in_order_and_received_in_it(
    servers: Servers,
) -> None:
    """Two topics, alternating: acks in the order sent, with increasing offsets per topic, and each
    topic's subscriber on the receiving server gets its messages in the order sent, acked ids."""
    async with clients(servers) as (publisher, subscribers):
        sent = [(TOPICS[number % 2], f"m{number}") for number in range(MESSAGES)]
        frames = [
            json.dumps({"type": "pub", "topic": topic, "body": body, "ref": body}) for topic, body in sent
        ]

        async def received(subscriber: ClientConnection, count: int) -> list[dict[str, Any]]:
            return [await next_frame(subscriber, "message", within=30) for _ in range(count)]

        async with asyncio.timeout(scaled(120)):
            # Every frame first, then the answers: none waits for the one before.
            for frame in frames:
                await publisher.send(frame)
            acks, *deliveries = await asyncio.gather(
                answers(publisher, MESSAGES),
                *(received(subscriber, MESSAGES // 2) for subscriber in subscribers),
            )
    assert [(ack["type"], ack["ref"]) for ack in acks] == [("ack", body) for _, body in sent]
    for topic, delivered in zip(TOPICS, deliveries, strict=True):
        topic_acks = [ack for ack, (sent_on, _) in zip(acks, sent, strict=True) if sent_on == topic]
        offsets = [ack["offset"] for ack in topic_acks]
        assert offsets == sorted(offsets), topic
        assert len(set(offsets)) == len(offsets), topic
        assert len({ack["epoch"] for ack in topic_acks}) == 1
        assert [message["body"] for message in delivered] == [body for t, body in sent if t == topic]
        assert [message["id"] for message in delivered] == [ack["id"] for ack in topic_acks]
        assert [message["offset"] for message in delivered] == offsets


async def test_refused_frames_among_publishes_in_flight_are_answered_in_their_place(servers: Servers) -> None:
    """A reused id and a bad frame between publishes: each error comes where its frame was."""
    async with clients(servers) as (publisher, subscribers):
        frames: list[dict[str, Any] | str] = []
        for number in range(30):
            frames.append({"type": "pub", "topic": "left", "body": f"m{number}", "ref": f"m{number}"})
            if number == 10:
                frames.append(
                    {"type": "pub", "topic": "left", "body": "x", "ref": "kept", "id": "pipeline-id-0001"}
                )
                frames.append(
                    {"type": "pub", "topic": "right", "body": "x", "ref": "reused", "id": "pipeline-id-0001"}
                )
            if number == 20:
                frames.append("{not json")
        async with asyncio.timeout(scaled(60)):
            for frame in frames:
                await publisher.send(frame if isinstance(frame, str) else json.dumps(frame))
            got = await answers(publisher, len(frames))
            delivered = [await next_frame(subscribers[0], "message", within=30) for _ in range(31)]
    expected: list[tuple[str, str | None]] = []
    for frame in frames:
        if isinstance(frame, str):
            expected.append(("error", None))
        elif frame["ref"] == "reused":
            expected.append(("error", "reused"))
        else:
            expected.append(("ack", frame["ref"]))
    assert [(answer["type"], answer.get("ref")) for answer in got] == expected
    assert [answer["code"] for answer in got if answer["type"] == "error"] == ["id_reused", "bad_frame"]
    assert [message["body"] for message in delivered] == [
        frame["body"] for frame in frames if isinstance(frame, dict) and frame["topic"] == "left"
    ]
