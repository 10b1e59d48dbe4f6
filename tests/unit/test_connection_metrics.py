"""What a connection reports to the Metrics port: each publish's result, the error frames its client
was sent, and at its close the close code and the frames that never reached its socket."""

# The server runs in the test's event loop (tests/unit/running_server.py) with its metrics replaced
# by a recording fake, and clients connect over loopback.

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import pytest
from dependency_injector import providers
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.wire.server_frames import message_frame
from minimess.app.messaging import MessagingService, Session
from minimess.app.publishing import Publishing
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.errors import BrokerUnavailable, Forbidden, IdReused, PublishTimeout
from minimess.domain.metrics import MetricsSummary
from minimess.domain.model import NO_HEADERS, Message, Topic, Uid
from minimess.domain.permissions import Grant
from minimess.domain.ports import Outbox
from tests.timeouts import scaled
from tests.unit.fakes import RecordingMetrics, SteppingClock
from tests.unit.running_server import RunningServer, next_frame, running_server

QUEUE_SIZE = 4
SLOW_CONSUMER = 4000


class ServedRecordingMetrics(RecordingMetrics):
    """The recording fake, with what the server serves on /metrics and /stats (nothing)."""

    def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain"

    def summary(self, fresh: bool = False) -> MetricsSummary:
        nested = ("broker", "cpu_seconds", "rss_bytes")
        counts = {field.name: 0 for field in attrs.fields(MetricsSummary) if field.name not in nested}
        return MetricsSummary(**counts, broker={}, cpu_seconds=None, rss_bytes=None)


class RefusingService(MessagingService):
    """A publish on a topic named for an error is refused with it; each connection's outbox is kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outboxes: dict[Uid, Outbox] = {}

    def connect(self, uid: Uid, outbox: Outbox, grant: Grant | None = None) -> Session:
        self.outboxes[uid] = outbox
        return super().connect(uid, outbox, grant)

    async def hand_over(
        self,
        session: Session,
        topic: Topic,
        body: str,
        headers: Mapping[str, str] = NO_HEADERS,
        message_id: str | None = None,
    ) -> Publishing:
        refusal = REFUSALS.get(topic.name)
        if refusal is not None:
            raise refusal(f"refused on {topic.name}")
        return await super().hand_over(session, topic, body, headers, message_id)


# A publish on each of these topics is refused with its error.
REFUSALS: dict[str, type[Exception]] = {
    "refused-forbidden": Forbidden,
    "refused-unavailable": BrokerUnavailable,
    "refused-timeout": PublishTimeout,
    "refused-reused": IdReused,
}


@pytest.fixture
async def running() -> AsyncIterator[tuple[RunningServer, ServedRecordingMetrics, RefusingService]]:
    settings = ServeSettings(
        server=WebSocketSettings(
            port=0, ping_interval=0, rate_limit=0, queue_size=QUEUE_SIZE, node_id="unit"
        ),
        messaging=MessagingSettings(tick=0),
    )
    container = build_container(settings)
    metrics = ServedRecordingMetrics()
    container.metrics.override(providers.Object(metrics))
    container.service.override(providers.Singleton(RefusingService, **container.service.kwargs))
    service = container.service()
    assert isinstance(service, RefusingService)
    async with running_server(container) as running:
        yield running, metrics, service


async def closed_by_server(connection: ClientConnection) -> tuple[int | None, list[dict[str, object]]]:
    """Read until the server closes `connection`: its close code, and the frames that came first."""
    documents = []
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                documents.append(json.loads(await connection.recv()))
        except ConnectionClosed:
            pass
    return connection.close_code, documents


@pytest.mark.parametrize(
    ("topic", "result"),
    [
        ("news", "ack"),
        ("refused-forbidden", "forbidden"),
        ("refused-unavailable", "broker_unavailable"),
        ("refused-timeout", "publish_timeout"),
        ("refused-reused", "id_reused"),
    ],
)
async def test_each_publish_is_reported_once_with_its_result_and_a_refusal_with_its_error_frame(
    running: tuple[RunningServer, ServedRecordingMetrics, RefusingService], topic: str, result: str
) -> None:
    server, metrics, _ = running
    alice = await server.client("alice")
    await alice.send(
        json.dumps({"type": "pub", "topic": topic, "body": "hi", "ref": "r-1", "id": "message-id-000001"})
    )
    answer = await next_frame(alice)
    assert (answer["type"], answer.get("code", "ack"), answer["ref"]) == (
        "ack" if result == "ack" else "error",
        result,
        "r-1",
    )
    ((reported, seconds),) = metrics.named("publish_answered")
    assert reported == result
    assert isinstance(seconds, float)
    assert 0 <= seconds < scaled(10)
    assert metrics.named("error_frame_sent") == ([] if result == "ack" else [(result,)])


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_a_client_that_closes_is_reported_with_the_code_it_closed_with(
    running: tuple[RunningServer, ServedRecordingMetrics, RefusingService], code: int
) -> None:
    server, metrics, _ = running
    alice = await server.client("alice", "news")
    await alice.close(code)
    assert await metrics.reported("connection_closed") == [(code, 0)]
    assert metrics.named("connection_opened") == [()]


async def test_a_connection_lost_without_a_close_frame_is_reported_as_1006(
    running: tuple[RunningServer, ServedRecordingMetrics, RefusingService],
) -> None:
    server, metrics, _ = running
    alice = await server.client("alice", "news")
    alice.transport.abort()
    assert await metrics.reported("connection_closed") == [(1006, 0)]


def a_message(number: int) -> bytes:
    return message_frame(
        Message.create(Topic("flood"), Uid("someone"), f"message {number}", SteppingClock().now())
    )


async def test_a_slow_consumer_reports_4000_and_every_frame_it_did_not_get_as_dropped(
    running: tuple[RunningServer, ServedRecordingMetrics, RefusingService],
) -> None:
    server, metrics, service = running
    slow = await server.client("slow")
    pushed = [a_message(number) for number in range(QUEUE_SIZE + 5)]
    for frame in pushed:  # in one turn of the event loop: past the queue's bound
        service.outboxes[Uid("slow")].push(frame)
    code, received = await closed_by_server(slow)
    assert code == SLOW_CONSUMER
    ((closed_with, frames_dropped),) = await metrics.reported("connection_closed")
    assert closed_with == SLOW_CONSUMER
    assert frames_dropped == len(pushed) - len(received)
    assert metrics.named("slow_consumer_closed") == [()]


async def test_an_error_frame_for_a_connection_that_stopped_taking_frames_is_dropped_not_counted(
    running: tuple[RunningServer, ServedRecordingMetrics, RefusingService],
) -> None:
    server, metrics, service = running
    slow = await server.client("slow")
    pushed = [a_message(number) for number in range(QUEUE_SIZE + 5)]
    for frame in pushed:
        service.outboxes[Uid("slow")].push(frame)
    # Read by the server after its outbound stopped taking frames: answered by an error frame that
    # cannot be sent.
    await slow.send("not json")
    code, received = await closed_by_server(slow)
    assert code == SLOW_CONSUMER
    ((_, frames_dropped),) = await metrics.reported("connection_closed")
    assert metrics.named("error_frame_sent") == []
    assert frames_dropped == len(pushed) + 1 - len(received)
