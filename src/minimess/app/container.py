"""The only place that names concrete adapters: it wires settings, broker, hub and server."""

from __future__ import annotations

from dependency_injector import containers, providers

from minimess.adapters.clock import SystemClock
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.websocket import codec
from minimess.adapters.websocket.server import WebSocketServer
from minimess.app.hub import Hub
from minimess.app.settings import ServerSettings
from minimess.app.usecases import Messaging


class Container(containers.DeclarativeContainer):
    """One server's object graph; tests override providers instead of patching modules."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ServerSettings)

    clock = providers.Singleton(SystemClock)
    # The bus between servers, picked by `broker.kind`; an unknown kind fails on first use.
    broker = providers.Selector(
        config.broker.kind,
        memory=providers.Singleton(MemoryBroker),
    )
    hub = providers.Singleton(Hub, render=codec.message_frame)
    messaging = providers.Singleton(
        Messaging,
        broker=broker,
        hub=hub,
        clock=clock,
        max_topics=config.server.max_topics,
    )
    server = providers.Singleton(
        WebSocketServer,
        settings=settings,
        messaging=messaging,
        hub=hub,
        broker=broker,
        clock=clock,
    )


def build_container(settings: ServerSettings) -> Container:
    """A container for one server process, configured from its settings."""
    container = Container(settings=settings)
    container.config.from_dict(
        {"broker": {"kind": settings.broker}, "server": {"max_topics": settings.max_topics}}
    )
    return container
