"""A server's object graph: the bus, the messaging service, the WebSocket server and its metrics."""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

from dependency_injector import containers, providers

from minimess.adapters.clock import SystemClock
from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.adapters.local_channel.broker import ChannelBroker
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.prometheus_metrics import PrometheusMetrics, ScrapeSources
from minimess.adapters.websocket_server.outbound import Flusher
from minimess.adapters.websocket_server.page_files import PageFiles
from minimess.adapters.websocket_server.server import WebSocketServer
from minimess.adapters.websocket_server.tracing import TracedRenderer
from minimess.adapters.wire.server_frames import FrameRenderer
from minimess.app.history import History
from minimess.app.interest import Interest
from minimess.app.messaging import MessagingService
from minimess.bootstrap.settings import ServeSettings
from minimess.bootstrap.worker import WorkerRole

if TYPE_CHECKING:
    from minimess.adapters.kafka.broker import KafkaBroker
    from minimess.adapters.kafka.clients import KafkaClients
    from minimess.adapters.kafka.settings import KafkaSettings


def kafka_broker(
    settings: KafkaSettings,
    node_id: str,
    max_body_bytes: int,
    clients: KafkaClients | None = None,
    interest: Interest | None = None,
) -> KafkaBroker:
    """The Kafka bus; `clients` stand in for aiokafka's in tests.

    Imported here, when --broker kafka selects it: aiokafka and Thrift take a second to import,
    which every server on the memory bus would pay for nothing.
    """
    from minimess.adapters.kafka.broker import KafkaBroker
    from minimess.adapters.kafka.envelope import RecordRules

    # Records from the bus are held to what a client of this server could publish.
    rules = RecordRules(max_body_bytes=max_body_bytes)
    return KafkaBroker(settings=settings, node_id=node_id, clients=clients, rules=rules, interest=interest)


def chat_page(wanted: bool) -> PageFiles | None:
    """The browser chat page's files (the web_page package's data), read now; None with --no-chat-page."""
    return (
        PageFiles.from_directory(importlib.resources.files("minimess.adapters.web_page")) if wanted else None
    )


class Container(containers.DeclarativeContainer):
    """One server's object graph; tests and benchmarks override providers instead of patching."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ServeSettings)

    clock = providers.Singleton(SystemClock)
    # The topics this server needs from the bus: the service keeps it, the Kafka bus reads by it.
    interest = providers.Singleton(Interest, after_publish=settings.provided.messaging.history_limits.ttl)
    # The bus between servers, picked by `broker` (its keys are settings.BROKERS); only the selected
    # one is ever built, so a server on the memory broker never touches Kafka, nor imports its client.
    broker = providers.Selector(
        config.broker,
        memory=providers.Singleton(MemoryBroker),
        kafka=providers.Singleton(
            kafka_broker,
            settings=settings.provided.kafka,
            node_id=settings.provided.server.node_name,
            max_body_bytes=settings.provided.server.max_message_bytes,
            interest=interest,
        ),
        # A worker of `--workers N` on the memory bus: the host's workers share the local channel.
        channel=providers.Singleton(ChannelBroker, path=config.channel),
    )
    # How messages and ticks become frames; --trace adds the stage times.
    renderer = providers.Selector(
        config.frames,
        plain=providers.Object(FrameRenderer()),
        traced=providers.Object(TracedRenderer()),
    )
    # What the server reports to operators, served on /metrics (and /stats).
    metrics = providers.Singleton(PrometheusMetrics, max_age=settings.provided.server.metrics_max_age)
    # Writes what each turn of the event loop sent, and times the fan-out of messages to its end.
    flusher = providers.Singleton(Flusher, metrics=metrics)
    service = providers.Singleton(
        MessagingService,
        broker=broker,
        health=broker,
        renderer=renderer,
        clock=clock,
        max_topics=settings.provided.messaging.max_topics,
        tick=settings.provided.messaging.tick,
        history=providers.Factory(History, limits=settings.provided.messaging.history_limits),
        recovery_timeout=settings.provided.messaging.recovery_timeout,
        # The replay and its `subscribed` frame fit in the connection's outbound queue.
        max_replay=providers.Callable(lambda size: size - 1, settings.provided.server.queue_size),
        fan_out_started=flusher.provided.fan_out_started,
        interest=interest,
    )
    # Who may connect as whom: tokens signed with the secret in --auth-secret-file, read once here.
    tokens = providers.Singleton(
        lambda path: None if path is None else HS256Tokens.from_file(path),
        settings.provided.server.auth_secret_file,
    )
    # The browser chat page: the files of the web_page package, read once, served at `/`.
    page = providers.Singleton(chat_page, settings.provided.server.chat_page)
    server = providers.Singleton(
        WebSocketServer,
        settings=settings.provided.server,
        service=service,
        metrics=metrics,
        trace=settings.provided.trace,
        flusher=flusher,
        tokens=tokens,
        bus=settings.provided.bus_summary,
        page=page,
        reuse_port=config.reuse_port,
    )
    # What the metrics read at each scrape, counted elsewhere as plain ints. Handed over as a
    # provider, called when scraped: the service and the server are built after the metrics.
    scrape_sources = providers.Singleton(
        ScrapeSources, counters=service.provided.counters, health=broker, queued=server.provided.queued_bytes
    )
    metrics.add_kwargs(sources=scrape_sources.provider)


def build_container(settings: ServeSettings, role: WorkerRole | None = None) -> Container:
    """A container for one server process, configured from its settings.

    A worker of `--workers N` (`role`) applies its settings (worker.WorkerRole.settings), shares
    its port with the other workers, and on the memory bus is on the local channel instead.
    """
    if role is not None:
        settings = role.settings(settings)
    channel = None if role is None else role.channel
    broker = "channel" if channel is not None and settings.broker == "memory" else settings.broker
    container = Container(settings=settings)
    container.config.from_dict(
        {
            "broker": broker,
            "frames": "traced" if settings.trace else "plain",
            "channel": channel,
            "reuse_port": role is not None,
        }
    )
    return container
