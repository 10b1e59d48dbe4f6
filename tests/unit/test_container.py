"""The DI container: it picks the broker by kind, shares one object graph, and lets tests override."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC

import pytest
from dependency_injector.errors import Error as ContainerError

from minimess.adapters.clock import SystemClock
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.websocket.server import WebSocketServer
from minimess.app.container import build_container
from minimess.app.settings import ServerSettings
from minimess.domain.errors import TooManyTopics
from minimess.domain.model import Message, Topic, Uid
from minimess.domain.ports import Deliver
from tests.unit.fakes import RecordingOutbox


class RecordingBroker:
    """A Broker that accepts every publish and keeps it, delivering nothing."""

    def __init__(self) -> None:
        self.published: list[Message] = []

    def attach(self, deliver: Deliver) -> AbstractAsyncContextManager[None]:
        @asynccontextmanager
        async def attached() -> AsyncIterator[None]:
            yield

        return attached()

    async def publish(self, message: Message) -> None:
        self.published.append(message)

    def is_ready(self) -> bool:
        return True

    def counters(self) -> dict[str, int]:
        return {}


def test_the_memory_broker_is_selected_for_kind_memory() -> None:
    """With the default settings the broker is the in-process MemoryBroker."""
    container = build_container(ServerSettings())
    assert isinstance(container.broker(), MemoryBroker)


def test_one_broker_and_one_hub_are_shared_by_messaging_and_server() -> None:
    """Messaging and the server get the very same broker, hub and clock: they are singletons."""
    container = build_container(ServerSettings())
    messaging, server = container.messaging(), container.server()
    assert isinstance(server, WebSocketServer)
    assert container.broker() is container.broker()
    assert messaging._broker is container.broker()
    assert server._broker is container.broker()
    assert messaging._hub is server._hub is container.hub()
    assert messaging._clock is server._clock is container.clock()
    assert container.messaging() is messaging
    assert container.server() is server


def test_each_container_has_its_own_broker() -> None:
    """Two containers (two servers in one test process) do not share a bus by accident."""
    first, second = build_container(ServerSettings()), build_container(ServerSettings())
    assert first.broker() is not second.broker()
    assert first.hub() is not second.hub()


def test_the_server_gets_the_settings_it_was_built_from() -> None:
    """The settings handed to build_container are the server's settings."""
    settings = ServerSettings(port=0, tick=0, node_id="n1")
    assert build_container(settings).server()._settings is settings


def test_the_clock_is_the_system_clock_in_utc() -> None:
    """The default clock reads the real time, timezone-aware in UTC."""
    clock = build_container(ServerSettings()).clock()
    assert isinstance(clock, SystemClock)
    assert clock.now().tzinfo is UTC


def test_max_topics_reaches_the_use_cases() -> None:
    """The max_topics setting is the limit Messaging enforces."""
    messaging = build_container(ServerSettings(max_topics=2)).messaging()
    session = messaging.connect(Uid("alice"), RecordingOutbox())
    messaging.subscribe(session, Topic("a"))
    messaging.subscribe(session, Topic("b"))
    with pytest.raises(TooManyTopics):
        messaging.subscribe(session, Topic("c"))


def test_an_unknown_broker_kind_fails_when_the_broker_is_resolved() -> None:
    """A broker kind with no provider raises a container error naming it on first use, not before."""
    container = build_container(ServerSettings())
    container.config.broker.kind.from_value("carrier-pigeon")
    with pytest.raises(ContainerError, match="carrier-pigeon"):
        container.broker()
    with pytest.raises(ContainerError, match="carrier-pigeon"):
        container.messaging()


async def test_overriding_the_broker_provider_rewires_messaging_and_server() -> None:
    """`container.broker.override(fake)` makes use cases and server publish through the fake."""
    container = build_container(ServerSettings())
    fake = RecordingBroker()
    with container.broker.override(fake):
        messaging, server = container.messaging(), container.server()
        assert server._broker is fake
        session = messaging.connect(Uid("alice"), RecordingOutbox())
        message = await messaging.publish(session, Topic("news"), "hi")
    assert fake.published == [message]
