"""An unexpected error in one connection is logged with its id and closes only that connection (1011)."""

# The server runs in the test's event loop (tests/unit/running_server.py) and clients connect over
# loopback: the rule is about a live connection's tasks.

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from minimess.app.settings import ServerSettings
from minimess.app.usecases import Messaging, Session
from minimess.domain.model import Subscription, Topic
from tests.timeouts import scaled
from tests.unit.running_server import RunningServer, next_frame, running_server

BOOM = "boom"
"""Subscribing to this topic raises RuntimeError: the stand-in for a bug in the server."""

INTERNAL_ERROR = 1011


async def close_code(connection: ClientConnection) -> int | None:
    """The code the server closed `connection` with, once it is closed."""
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed:
            pass
    return connection.close_code


@pytest.fixture
def failing_subscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Messaging.subscribe raise RuntimeError for the topic BOOM, and behave for any other."""
    subscribe = Messaging.subscribe

    def subscribe_or_fail(self: Messaging, session: Session, topic: Topic) -> Subscription:
        if topic.name == BOOM:
            raise RuntimeError("bug while subscribing")
        return subscribe(self, session, topic)

    monkeypatch.setattr(Messaging, "subscribe", subscribe_or_fail)


@pytest.fixture
async def running(failing_subscribe: None) -> AsyncIterator[RunningServer]:
    """A server on a free loopback port, ticks and pings off, stopped after the test."""
    async with running_server(ServerSettings(port=0, tick=0, ping_interval=0, node_id="unit")) as running:
        yield running


async def test_a_failing_connection_is_closed_with_1011_and_the_others_keep_working(
    running: RunningServer,
) -> None:
    """A bug hit by Alice's frame closes Alice with 1011; Bob still publishes and receives."""
    alice = await running.client("alice", "news")
    bob = await running.client("bob", "news")
    await alice.send(json.dumps({"type": "sub", "topic": BOOM, "ref": "a-1"}))
    assert await close_code(alice) == INTERNAL_ERROR

    await bob.send(json.dumps({"type": "pub", "topic": "news", "body": "still here", "ref": "b-1"}))
    message, ack = await next_frame(bob), await next_frame(bob)
    assert (message["type"], message["from"], message["body"]) == ("message", "bob", "still here")
    assert (ack["type"], ack["ref"], ack["id"]) == ("ack", "b-1", message["id"])
    await bob.send(json.dumps({"type": "sub", "topic": "sport"}))
    assert await next_frame(bob) == {"type": "subscribed", "topic": "sport"}
    await bob.close()
    assert running.server.stats.internal_errors == 1


async def test_the_failure_is_logged_with_the_failing_connection_id(running: RunningServer) -> None:
    """One `connection_failed` error is logged, with the exception and the id of Alice's connection."""
    alice = await running.client("alice", "news")
    bob = await running.client("bob", "news")
    await alice.send(json.dumps({"type": "sub", "topic": BOOM}))
    assert await close_code(alice) == INTERNAL_ERROR
    await bob.close()

    (failed,) = running.events("connection_failed")
    assert failed["log_level"] == "error"
    assert isinstance(failed["exc_info"], RuntimeError)
    assert failed["connection_id"] == running.connection_id("alice")
    assert failed["connection_id"] != running.connection_id("bob")


async def test_new_connections_are_served_after_a_failure(running: RunningServer) -> None:
    """The server keeps accepting clients after one connection failed."""
    alice = await running.client("alice")
    await alice.send(json.dumps({"type": "sub", "topic": BOOM}))
    assert await close_code(alice) == INTERNAL_ERROR
    carol = await running.client("carol")
    await carol.send(json.dumps({"type": "sub", "topic": "news"}))
    assert await next_frame(carol) == {"type": "subscribed", "topic": "news"}
    await carol.close()


async def test_a_failure_while_subscribing_to_the_url_topics_follows_the_same_rule(
    running: RunningServer,
) -> None:
    """A bug hit while subscribing to the topics in the URL also closes with 1011 and logs the id."""
    bob = await running.client("bob", "news")
    path = f"/subscribe/id:alice/topic:{BOOM}"
    async with connect(f"ws://127.0.0.1:{running.port}{path}", open_timeout=scaled(10)) as alice:
        assert await close_code(alice) == INTERNAL_ERROR
    await bob.send(json.dumps({"type": "sub", "topic": "sport"}))
    assert await next_frame(bob) == {"type": "subscribed", "topic": "sport"}
    await bob.close()

    (failed,) = running.events("connection_failed")
    assert isinstance(failed["exc_info"], RuntimeError)
    assert failed["connection_id"] == running.connection_id("alice")
