"""The only place that names concrete adapters: it builds a server's and a client's object graph."""

from __future__ import annotations

import attrs
from dependency_injector import containers, providers

from minimess.adapters.clock import SystemClock
from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.kafka.envelope import RecordRules
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.prometheus_metrics import PrometheusMetrics, ScrapeSources
from minimess.adapters.terminal import InteractiveDisplay, PrintDisplay, run_interactive, run_printing
from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.credentials import Credentials
from minimess.adapters.websocket_client.link import ServerLink
from minimess.adapters.websocket_server.outbound import Flusher
from minimess.adapters.websocket_server.server import WebSocketServer
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.websocket_server.tracing import TracedRenderer
from minimess.adapters.wire.server_frames import FrameRenderer
from minimess.app.chat_client import ChatClient
from minimess.app.history import History
from minimess.app.messaging import MessagingService
from minimess.app.settings import ClientSettings, MessagingSettings, TokenSettings
from minimess.app.transcript_files import open_transcript
from minimess.domain.model import Topic, Uid


@attrs.frozen(kw_only=True)
class ServeSettings:
    """Everything `minimess serve` is told, grouped by the part that uses it."""

    broker: str = attrs.field(
        default="memory",
        validator=lambda _settings, _attribute, kind: _check_broker(kind),
        metadata={"help": "The bus between servers.", "choices": lambda: BROKERS},
    )
    trace: bool = attrs.field(
        default=False,
        metadata={
            "help": "Stamp messages with stage times for a latency breakdown (minimess bench --trace);"
            " costs CPU, for measuring only."
        },
    )
    server: WebSocketSettings = attrs.field(factory=WebSocketSettings)
    messaging: MessagingSettings = attrs.field(factory=MessagingSettings)
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)

    @property
    def bus_summary(self) -> dict[str, str]:
        """What the start line says of the bus: its kind, and for Kafka its address and topic."""
        if self.broker == "kafka":
            return {
                "broker": "kafka",
                "kafka_bootstrap": self.kafka.kafka_bootstrap,
                "kafka_topic": self.kafka.kafka_topic,
            }
        return {"broker": self.broker}


class Container(containers.DeclarativeContainer):
    """One server's object graph; tests and benchmarks override providers instead of patching."""

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=ServeSettings)

    clock = providers.Singleton(SystemClock)
    # The bus between servers, picked by `broker`; only the selected one is ever built, so the
    # memory broker never touches Kafka.
    broker = providers.Selector(
        config.broker,
        memory=providers.Singleton(MemoryBroker),
        kafka=providers.Singleton(
            KafkaBroker,
            settings=settings.provided.kafka,
            node_id=settings.provided.server.node_name,
            # Records from the bus are held to what a client of this server could publish.
            rules=providers.Factory(RecordRules, max_body_bytes=settings.provided.server.max_message_bytes),
        ),
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
    )
    # Who may connect as whom: tokens signed with the secret in --auth-secret-file, read once here.
    tokens = providers.Singleton(
        lambda path: None if path is None else HS256Tokens.from_file(path),
        settings.provided.server.auth_secret_file,
    )
    server = providers.Singleton(
        WebSocketServer,
        settings=settings.provided.server,
        service=service,
        metrics=metrics,
        trace=settings.provided.trace,
        flusher=flusher,
        tokens=tokens,
        bus=settings.provided.bus_summary,
    )
    # What the metrics read at each scrape, counted elsewhere as plain ints. Handed over as a
    # provider, called when scraped: the service and the server are built after the metrics.
    scrape_sources = providers.Singleton(
        ScrapeSources, counters=service.provided.counters, health=broker, queued=server.provided.queued_bytes
    )
    metrics.add_kwargs(sources=scrape_sources.provider)


BROKERS: tuple[str, ...] = tuple(Container.broker.providers)
"""The buses a server can run on, listed once: the keys of the broker selector."""


def _check_broker(kind: str) -> None:
    if kind not in BROKERS:
        raise ValueError(f"unknown broker {kind!r}; expected one of {', '.join(BROKERS)}")


def build_container(settings: ServeSettings) -> Container:
    """A container for one server process, configured from its settings."""
    container = Container(settings=settings)
    container.config.from_dict({"broker": settings.broker, "frames": "traced" if settings.trace else "plain"})
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
        credentials=providers.Factory(
            Credentials, token=settings.provided.token, token_file=settings.provided.token_file
        ),
    )
    # Opened and locked as it is built: `<uid>.mess`, or the next free one (TranscriptInUse, OSError).
    transcript = providers.Singleton(open_transcript, uid=uid, log_file=settings.provided.log_file)
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


def mint_token(settings: TokenSettings) -> str:
    """A token for `settings.uid`, signed with the secret in `settings.secret_file` (SecretFileError)."""
    tokens = HS256Tokens.from_file(settings.secret_file)
    return tokens.mint(
        Uid(settings.uid), settings.lifetime, settings.subscribe_patterns, settings.publish_patterns
    )
