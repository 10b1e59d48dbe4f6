"""A connection's publishes in flight together: handed to the bus in the order read, without waiting
for the bus's answers, and every frame answered in the order read, whatever order the bus answers in."""

# The server runs in the test's event loop (tests/unit/running_server.py) on a bus whose answers the
# test releases (HeldBroker), and a client connects over loopback.

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dependency_injector import providers
from websockets.asyncio.client import ClientConnection

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.errors import PublishTimeout
from tests.timeouts import scaled
from tests.unit.fakes import HeldBroker
from tests.unit.running_server import RunningServer, next_frame, running_server
from tests.unit.test_connection_metrics import ServedRecordingMetrics

WINDOW = 4


@pytest.fixture
def metrics() -> ServedRecordingMetrics:
    return ServedRecordingMetrics()


@pytest.fixture
async def running(metrics: ServedRecordingMetrics) -> AsyncIterator[tuple[RunningServer, HeldBroker]]:
    settings = ServeSettings(
        server=WebSocketSettings(
            port=0, ping_interval=0, rate_limit=0, node_id="unit", publish_window=WINDOW
        ),
        messaging=MessagingSettings(tick=0),
    )
    container = build_container(settings)
    broker = HeldBroker()
    container.broker.override(providers.Object(broker))
    container.metrics.override(providers.Object(metrics))
    async with running_server(container) as running:
        yield running, broker


async def pub(client: ClientConnection, ref: str, topic: str = "news", **fields: Any) -> None:
    await client.send(
        json.dumps({"type": "pub", "topic": topic, "body": f"body of {ref}", "ref": ref, **fields})
    )


async def answers(client: ClientConnection, count: int) -> list[tuple[str, str | None]]:
    """The next `count` frames, as (type, ref or topic)."""
    frames = [await next_frame(client) for _ in range(count)]
    return [(frame["type"], frame.get("ref", frame.get("topic"))) for frame in frames]


async def test_publishes_are_handed_over_without_waiting_and_acked_in_order_when_answered_in_reverse(
    running: tuple[RunningServer, HeldBroker],
) -> None:
    server, broker = running
    client = await server.client("alice")
    for number in range(WINDOW):
        await pub(client, f"p{number}")
    # All in the bus's hands while it has answered none: the reader did not wait for an answer.
    handed = await broker.handed(WINDOW)
    assert [message.body for message in handed] == [f"body of p{number}" for number in range(WINDOW)]
    await broker.release(*reversed(range(WINDOW)))
    acks = [await next_frame(client) for _ in range(WINDOW)]
    assert [(ack["type"], ack["ref"]) for ack in acks] == [("ack", f"p{number}") for number in range(WINDOW)]
    # Each ack carries its own message's position, whatever order the bus put them in.
    assert [ack["offset"] for ack in acks] == list(reversed(range(WINDOW)))


async def test_every_frame_is_answered_in_its_turn_behind_the_publishes_before_it(
    running: tuple[RunningServer, HeldBroker],
) -> None:
    """A bad frame, a reused id, a subscription and a publish the bus fails, each in its place."""
    server, broker = running
    client = await server.client("alice")
    await pub(client, "p0", id="id-of-p0-0000001")
    await client.send("not json")
    await pub(client, "reused", topic="sport", id="id-of-p0-0000001")
    await pub(client, "p1")
    await client.send(json.dumps({"type": "sub", "topic": "sport", "ref": "s"}))
    await pub(client, "p2")
    await broker.handed(2)
    broker.fail(1, PublishTimeout("no answer in time"))
    await broker.release(0)
    # The subscription waited for the publishes before it: only then is the next one handed over.
    await broker.handed(3)
    await broker.release(2)
    assert await answers(client, 6) == [
        ("ack", "p0"),
        ("error", None),
        ("error", "reused"),
        ("error", "p1"),
        ("subscribed", "sport"),
        ("ack", "p2"),
    ]


async def test_a_full_window_stops_the_reader_until_its_first_publish_is_answered(
    running: tuple[RunningServer, HeldBroker],
) -> None:
    server, broker = running
    client = await server.client("alice")
    for number in range(WINDOW + 2):
        await pub(client, f"p{number}")
    await broker.handed(WINDOW)
    await broker.release(0)
    await broker.handed(WINDOW + 1)
    # One answered, one more handed over, and the window is full again: the last frame waits unread.
    assert len(broker.held) == WINDOW + 1
    await broker.release(*range(1, WINDOW + 1))
    await broker.handed(WINDOW + 2)
    await broker.release(WINDOW + 1)
    assert await answers(client, WINDOW + 2) == [("ack", f"p{number}") for number in range(WINDOW + 2)]


async def test_a_client_gone_with_publishes_in_flight_leaves_nothing_waiting_on_them(
    running: tuple[RunningServer, HeldBroker], metrics: ServedRecordingMetrics
) -> None:
    """Its connection ends at once; the bus's answers that come later find nobody, and break nothing."""
    server, broker = running
    client = await server.client("alice")
    for number in range(3):
        await pub(client, f"p{number}")
    await broker.handed(3)
    await client.close()
    # Its connection ended with the bus's answers still to come.
    await metrics.reported("connection_closed")
    broker.fail(0, PublishTimeout("no answer in time"))
    await broker.release(1, 2)
    other = await server.client("bob")
    await pub(other, "after")
    await broker.handed(4)
    await broker.release(3)
    assert await answers(other, 1) == [("ack", "after")]
    assert server.events("connection_failed") == []
    # Only the publish answered to a client counts as answered.
    assert [result for result, _ in metrics.named("publish_answered")] == ["ack"]


async def test_a_shutdown_answers_the_publishes_in_flight_before_it_closes() -> None:
    """Drained, a connection gets the acks of what the bus had (answered during the drain), then 1001."""
    settings = ServeSettings(
        server=WebSocketSettings(port=0, ping_interval=0, rate_limit=0, node_id="unit"),
        messaging=MessagingSettings(tick=0),
    )
    container = build_container(settings)
    broker = HeldBroker()
    container.broker.override(providers.Object(broker))
    server = container.server()
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    async with asyncio.timeout(scaled(10)):
        await server.listening.wait()
    running = RunningServer(server, server.port, [])
    client = await running.client("alice")
    # Nothing in flight: drained and closed at once, while the publisher's drain waits for the bus.
    witness = await running.client("bob")
    for number in range(3):
        await pub(client, f"p{number}")
    await broker.handed(3)
    stop.set()
    async with asyncio.timeout(scaled(10)):
        await witness.wait_closed()
    assert witness.close_code == 1001
    await broker.release(2, 0, 1)
    assert await answers(client, 3) == [("ack", f"p{number}") for number in range(3)]
    async with asyncio.timeout(scaled(10)):
        await client.wait_closed()
        await serving
    assert client.close_code == 1001
