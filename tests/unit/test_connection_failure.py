"""An unexpected error in one connection is logged with its id and closes only that connection (1011)."""

# The server runs in the test's event loop (tests/unit/running_server.py) and clients connect over
# loopback: the rule is about a live connection's tasks.

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from dependency_injector import providers
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.messaging import MessagingService, Session, Subscribed
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.model import Topic
from tests.timeouts import scaled
from tests.unit.running_server import RunningServer, next_frame, running_server

BOOM = Topic("boom")
INTERNAL_ERROR = 1011


class BuggyService(MessagingService):
    """Subscribing to BOOM raises RuntimeError: the stand-in for a bug in the server."""

    def subscribe(self, session: Session, topic: Topic) -> Subscribed:
        if topic == BOOM:
            raise RuntimeError("bug while subscribing")
        return super().subscribe(session, topic)


async def close_code(connection: ClientConnection) -> int | None:
    """The code the server closed `connection` with, once it is closed."""
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed:
            pass
    return connection.close_code


async def sub(connection: ClientConnection, topic: str) -> None:
    await connection.send(json.dumps({"type": "sub", "topic": topic}))


@pytest.fixture
async def running() -> AsyncIterator[RunningServer]:
    settings = ServeSettings(
        server=WebSocketSettings(port=0, ping_interval=0, node_id="unit"),
        messaging=MessagingSettings(tick=0),
    )
    container = build_container(settings)
    container.service.override(providers.Singleton(BuggyService, **container.service.kwargs))
    async with running_server(container) as running:
        yield running


async def test_a_failing_connection_is_closed_with_1011_and_logged_and_the_others_keep_working(
    running: RunningServer,
) -> None:
    alice = await running.client("alice", "news")
    bob = await running.client("bob", "news")
    await sub(alice, BOOM.name)
    assert await close_code(alice) == INTERNAL_ERROR
    (failed,) = running.events("connection_failed")
    assert (failed["log_level"], failed["connection_id"]) == ("error", running.connection_id("alice"))
    assert isinstance(failed["exc_info"], RuntimeError)
    assert running.server.stats_document()["internal_errors"] == 1

    await bob.send(json.dumps({"type": "pub", "topic": "news", "body": "still here", "ref": "b-1"}))
    message, ack = await next_frame(bob), await next_frame(bob)
    assert (message["type"], message["from"], message["body"]) == ("message", "bob", "still here")
    assert (ack["type"], ack["ref"], ack["id"]) == ("ack", "b-1", message["id"])
    carol = await running.client("carol")
    await sub(carol, "news")
    assert (await next_frame(carol)).items() >= {"type": "subscribed", "topic": "news"}.items()
    await bob.close()
    await carol.close()


async def test_a_failure_while_subscribing_to_the_url_topics_follows_the_same_rule(
    running: RunningServer,
) -> None:
    bob = await running.client("bob", "news")
    path = f"/subscribe/id:alice/topic:{BOOM.name}"
    async with connect(f"ws://127.0.0.1:{running.port}{path}", open_timeout=scaled(10)) as alice:
        assert await close_code(alice) == INTERNAL_ERROR
    await sub(bob, "sport")
    assert (await next_frame(bob)).items() >= {"type": "subscribed", "topic": "sport"}.items()
    await bob.close()

    (failed,) = running.events("connection_failed")
    assert failed["connection_id"] == running.connection_id("alice")
