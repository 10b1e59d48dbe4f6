"""The only place that names concrete adapters: it wires settings, broker, hub and server."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import containers, providers

from minimess.adapters.clock import SystemClock
from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.terminal import InteractiveDisplay, PrintDisplay, run_interactive, run_printing
from minimess.adapters.websocket import codec
from minimess.adapters.websocket.backoff import Backoff
from minimess.adapters.websocket.client import ServerLink
from minimess.adapters.websocket.server import WebSocketServer
from minimess.app.chat_client import ChatClient
from minimess.app.hub import Hub
from minimess.app.settings import ClientSettings, ServerSettings
from minimess.app.transcript import Transcript
from minimess.app.usecases import Messaging
from minimess.domain.model import Topic, Uid


class Container(containers.DeclarativeContainer):
    """One server's object graph; tests override providers instead of patching modules."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ServerSettings)

    clock = providers.Singleton(SystemClock)
    # The bus between servers, picked by `broker.kind`; an unknown kind fails on first use.
    # Only the selected one is ever built, so the memory broker never touches Kafka.
    broker = providers.Selector(
        config.broker.kind,
        memory=providers.Singleton(MemoryBroker),
        kafka=providers.Singleton(
            KafkaBroker,
            bootstrap=settings.provided.kafka_bootstrap,
            topic=settings.provided.kafka_topic,
            partitions=settings.provided.kafka_partitions,
            publish_timeout=settings.provided.publish_timeout,
            node_id=settings.provided.node_name,
        ),
    )
    # How a message becomes its frame, once per message; --trace adds the stage times.
    render = providers.Selector(
        config.server.frames,
        plain=providers.Object(codec.message_frame),
        traced=providers.Object(codec.traced_message_frame),
    )
    hub = providers.Singleton(Hub, render=render)
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
        {
            "broker": {"kind": settings.broker},
            "server": {
                "max_topics": settings.max_topics,
                "frames": "traced" if settings.trace else "plain",
            },
        }
    )
    return container


class ClientContainer(containers.DeclarativeContainer):
    """One terminal client's object graph: link to the server, transcript, display, session."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ClientSettings)

    uid = providers.Callable(Uid, settings.provided.uid)
    link = providers.Singleton(
        ServerLink,
        server_url=settings.provided.server,
        uid=uid,
        topics=providers.Callable(
            lambda names: tuple(Topic(name) for name in names), settings.provided.topics
        ),
        backoff=providers.Factory(
            Backoff, first=settings.provided.retry_first, cap=settings.provided.retry_cap
        ),
        ack_timeout=settings.provided.ack_timeout,
        queue_size=settings.provided.queue_size,
    )
    transcript = providers.Singleton(
        Transcript, path=providers.Callable(Path, settings.provided.transcript_path)
    )
    # --print writes messages to stdout and status to stderr; otherwise an interactive prompt.
    display = providers.Selector(
        config.mode,
        interactive=providers.Singleton(InteractiveDisplay),
        print=providers.Singleton(PrintDisplay),
    )
    run = providers.Selector(
        config.mode, interactive=providers.Object(run_interactive), print=providers.Object(run_printing)
    )
    chat = providers.Singleton(ChatClient, uid=uid, link=link, transcript=transcript, display=display)


def build_client_container(settings: ClientSettings) -> ClientContainer:
    """A container for one client process, configured from its settings."""
    container = ClientContainer(settings=settings)
    container.config.from_dict({"mode": "print" if settings.print_only else "interactive"})
    return container
