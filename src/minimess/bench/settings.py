"""What one `minimess bench` run does: the load, the servers under test and the report's form."""

from __future__ import annotations

import os
from collections.abc import Iterable

import attrs
from attrs import validators as v

BROKERS = ("memory", "kafka")
BASELINES = ("broadcast", "queued", "kafka", "none")
# The report has a row per server for CPU per message: a bound keeps the table readable.
MAX_KAFKA_SERVERS = 8


def _ports(values: Iterable[str | int]) -> tuple[int, ...]:
    ports = []
    for value in values:
        try:
            port = int(value)
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(f"'server_ports' must be ports 1-65535, got {value!r}")
        ports.append(port)
    return tuple(ports)


@attrs.frozen(kw_only=True)
class BenchSettings:
    """The options of `minimess bench`, checked."""

    subscribers: int = attrs.field(
        default=1000, validator=v.ge(0), metadata={"help": "Subscriber connections (0: only the publisher)."}
    )
    topics: int = attrs.field(
        default=1, validator=v.ge(1), metadata={"help": "Topics; subscriber i takes topic i mod TOPICS."}
    )
    # Messages per round, round-robin over the topics; 0 only connects (memory per connection).
    messages: int = attrs.field(
        default=200,
        validator=v.ge(0),
        metadata={"help": "Messages per round, round-robin over the topics; 0 only connects."},
    )
    # Messages per second; 0 floods (as fast as the server acks, `window` publishes in flight).
    rate: float = attrs.field(
        default=0.0,
        validator=v.ge(0),
        metadata={"help": "Messages per second; 0 publishes as fast as acked."},
    )
    body_bytes: int = attrs.field(
        default=64, validator=[v.ge(17), v.le(60000)], metadata={"help": "Bytes in each message body."}
    )
    window: int = attrs.field(
        default=64, validator=v.ge(1), metadata={"help": "Publishes in flight at most."}
    )
    workers: int = attrs.field(
        factory=lambda: os.cpu_count() or 2,
        validator=v.ge(1),
        metadata={"help": "Subscriber processes.", "default_text": "one per CPU"},
    )
    rounds: int = attrs.field(
        default=3, validator=v.ge(1), metadata={"help": "Rounds per server; the table shows medians."}
    )
    # Servers: "memory" starts one, "kafka" starts --kafka-servers on --kafka-bootstrap; a target URL
    # starts nothing and reads CPU and RSS from the servers' /metrics (`metrics_urls`).
    broker: str = attrs.field(
        default="memory",
        validator=v.in_(BROKERS),
        metadata={
            "help": "memory: start one server; kafka: start --kafka-servers on --kafka-bootstrap.",
            "choices": BROKERS,
        },
    )
    target: str | None = attrs.field(
        default=None,
        metadata={"help": "Measure a running server or proxy at this ws:// URL instead of starting one."},
    )
    metrics_urls: tuple[str, ...] = attrs.field(
        default=(),
        converter=tuple,
        metadata={
            "flag": "metrics",
            "aliases": ("--stats",),
            "metavar": "url",
            "help": "With --target: the /metrics URL of each server behind it (repeatable; default: the"
            " target's). --stats is its old name.",
        },
    )
    kafka_bootstrap: str = attrs.field(
        default="localhost:9092", metadata={"help": "Kafka for --broker kafka."}
    )
    kafka_topic: str = attrs.field(
        default="minimess.bench", metadata={"help": "Kafka topic for --broker kafka."}
    )
    # The yardstick server run in the same rounds (minimess.bench.baseline; kafka:
    # minimess.bench.kafka_baseline), or "none".
    baseline: str = attrs.field(
        default="broadcast",
        validator=v.in_(BASELINES),
        metadata={
            "help": "The bare websockets server run in the same rounds, for ratios: broadcast, queued"
            " (a writer task per connection, woken for each message), kafka (with --broker kafka: as many"
            " bare servers publishing and reading through aiokafka, on the Kafka topic --kafka-topic"
            " with .bare added) or none.",
            "choices": BASELINES,
        },
    )
    trace: bool = attrs.field(
        default=False,
        metadata={"help": "Start servers with --trace and report where the time goes, stage by stage."},
    )
    batch: bool = attrs.field(
        default=False,
        metadata={
            "help": "Subscribers and publishers offer the minimess.batch subprotocol: what a server"
            " writes together comes in one frame, a document a line (a bare baseline answers with"
            " none: one document a frame)."
        },
    )
    # Seconds to wait for the last deliveries after the last ack.
    drain_timeout: float = attrs.field(
        default=30.0,
        validator=v.gt(0),
        metadata={"help": "Seconds to wait for answers and deliveries after publishing."},
    )
    connect_concurrency: int = attrs.field(
        default=100, validator=v.ge(1), metadata={"help": "Connections each worker opens at once, at most."}
    )
    # Sent to /metrics as `Authorization: Bearer`, for servers run with --admin-token.
    metrics_token: str | None = attrs.field(
        default=None,
        repr=False,
        metadata={
            "aliases": ("--stats-token",),
            # The same variable as `minimess serve --admin-token`: one setting for both ends.
            "envvar": "MINIMESS_ADMIN_TOKEN",
            "help": "With --target: the servers' --admin-token, sent to /metrics as a Bearer token."
            " --stats-token is its old name.",
        },
    )
    # Connections to the first topic that never read, opened again whenever a server drops them.
    never_reading: int = attrs.field(
        default=0,
        validator=v.ge(0),
        metadata={
            "help": "Connections that subscribe to the first topic and never read, opened again"
            " whenever the server drops them, for the whole publishing phase."
        },
    )
    # The ports of the servers the bench starts, in start order; none: free ports.
    server_ports: tuple[int, ...] = attrs.field(
        default=(),
        converter=_ports,
        metadata={
            "flag": "server_port",
            "metavar": "port",
            "help": "A port for a server the bench starts (repeatable, one per server, in order: the"
            " minimess servers, one on memory or --kafka-servers on kafka, then the bare baseline: one, or"
            " --kafka-servers with --baseline kafka)."
            " Default: free ports.",
        },
    )
    # Publishing connections, all to the first server; the messages are dealt to them in turn.
    publishers: int = attrs.field(
        default=1,
        validator=v.ge(1),
        metadata={
            "help": "Publishing connections, all to the first server, each with its own --window;"
            " message i is sent by publisher i mod PUBLISHERS."
        },
    )
    # Servers started with --broker kafka: the publishers' and the ones that only consume.
    kafka_servers: int = attrs.field(
        default=2,
        validator=[v.ge(2), v.le(MAX_KAFKA_SERVERS)],
        metadata={
            "help": f"Servers --broker kafka starts (2-{MAX_KAFKA_SERVERS}): the publishers use the first,"
            " subscribers are spread over all."
        },
    )
    server_workers: int = attrs.field(
        default=1,
        validator=[v.ge(1), v.le(64)],
        metadata={
            "help": "--workers of each minimess server the bench starts; its CPU is the supervisor's and"
            " every worker's."
        },
    )

    def __attrs_post_init__(self) -> None:
        # Across fields, so here: a field's validator sees its own value alone (entrypoints/options.py).
        if self.subscribers and self.topics > self.subscribers:
            raise ValueError(f"--topics {self.topics} is more than --subscribers {self.subscribers}")
        if self.baseline == "kafka" and self.broker != "kafka":
            raise ValueError("'baseline' kafka needs --broker kafka")
        ports = self.server_ports
        started = self.minimess_servers + self.baseline_servers
        if ports and len(ports) != started:
            raise ValueError(
                f"'server_ports' must give {started} port(s), one per server it starts, got {len(ports)}"
            )
        if len(set(ports)) != len(ports):
            raise ValueError(f"'server_ports' must be different ports, got {', '.join(map(str, ports))}")

    @property
    def baseline_servers(self) -> int:
        """How many yardstick processes a baseline round starts: one, or (kafka) as many as minimess's."""
        if self.baseline == "none":
            return 0
        return self.kafka_servers if self.baseline == "kafka" else 1

    @property
    def minimess_servers(self) -> int:
        """How many `minimess serve` processes a round starts: none against a target."""
        if self.target is not None:
            return 0
        return self.kafka_servers if self.broker == "kafka" else 1
