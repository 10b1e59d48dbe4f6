"""An unexpected error in one connection is logged with its id and closes only that connection (1011)."""

# The server runs in the test's event loop and clients connect over loopback: the one unit test
# module that uses sockets, because the rule is about a live connection's tasks.

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import attrs
import pytest
import structlog
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from minimess.adapters.websocket.server import WebSocketServer
from minimess.app.container import build_container
from minimess.app.settings import ServerSettings
from minimess.app.usecases import Messaging, Session
from minimess.domain.model import Subscription, Topic
from tests.timeouts import scaled

BOOM = "boom"
"""Subscribing to this topic raises RuntimeError: the stand-in for a bug in the server."""

INTERNAL_ERROR = 1011


@attrs.define
class RunningServer:
    """A server serving in this event loop, and every log event since it started."""

    server: WebSocketServer
    port: int
    logs: list[MutableMapping[str, Any]]

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry["event"] == name]

    def connection_id(self, uid: str) -> str:
        (connected,) = [entry for entry in self.events("client_connected") if entry["uid"] == uid]
        connection_id = connected["connection_id"]
        assert isinstance(connection_id, str)
        return connection_id

    async def client(self, uid: str, *topics: str) -> ClientConnection:
        """Connect as `uid` on `topics` and consume the `success` frame."""
        path = f"/subscribe/id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)
        connection = await connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=scaled(10))
        assert (await next_frame(connection))["type"] == "success"
        return connection


async def next_frame(connection: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(scaled(10)):
        document = json.loads(await connection.recv())
    assert isinstance(document, dict)
    return document


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
    server = build_container(ServerSettings(port=0, tick=0, ping_interval=0, node_id="unit")).server()
    stop = asyncio.Event()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        task = asyncio.create_task(server.run(stop))
        async with asyncio.timeout(scaled(10)):
            while not any(entry["event"] == "server_listening" for entry in logs):
                assert not task.done(), task
                await asyncio.sleep(0.01)
        (listening,) = [entry for entry in logs if entry["event"] == "server_listening"]
        try:
            yield RunningServer(server=server, port=int(listening["port"]), logs=logs)
        finally:
            stop.set()
            async with asyncio.timeout(scaled(15)):
                await task


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
