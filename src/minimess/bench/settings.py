"""What one `minimess bench` run does: the load, the servers under test and the report's form."""

from __future__ import annotations

import os

import attrs
from attrs import validators as v


@attrs.frozen(kw_only=True)
class BenchSettings:
    """The options of `minimess bench`, checked."""

    subscribers: int = attrs.field(default=1000, validator=v.ge(0))
    topics: int = attrs.field(default=1, validator=v.ge(1))
    # Messages per round, round-robin over the topics; 0 only connects (memory per connection).
    messages: int = attrs.field(default=200, validator=v.ge(0))
    # Messages per second; 0 floods (as fast as the server acks, `window` publishes in flight).
    rate: float = attrs.field(default=0.0, validator=v.ge(0))
    body_bytes: int = attrs.field(default=64, validator=[v.ge(17), v.le(60000)])
    window: int = attrs.field(default=64, validator=v.ge(1))
    workers: int = attrs.field(factory=lambda: os.cpu_count() or 2, validator=v.ge(1))
    rounds: int = attrs.field(default=3, validator=v.ge(1))
    # Servers: "memory" starts one, "kafka" starts two on --kafka-bootstrap; a target URL
    # starts nothing and reads CPU and RSS from the servers' /metrics (`metrics_urls`).
    broker: str = attrs.field(default="memory", validator=v.in_(("memory", "kafka")))
    target: str | None = None
    metrics_urls: tuple[str, ...] = ()
    kafka_bootstrap: str = "localhost:9092"
    kafka_topic: str = "minimess.bench"
    # The yardstick server run in the same rounds (minimess.bench.baseline), or "none".
    baseline: str = attrs.field(default="broadcast", validator=v.in_(("broadcast", "queued", "none")))
    trace: bool = False
    # Seconds to wait for the last deliveries after the last ack.
    drain_timeout: float = attrs.field(default=30.0, validator=v.gt(0))
    connect_concurrency: int = attrs.field(default=100, validator=v.ge(1))
    # Sent to /metrics as `Authorization: Bearer`, for servers run with --admin-token.
    metrics_token: str | None = attrs.field(default=None, repr=False)
    # Connections to the first topic that never read, opened again whenever a server drops them.
    never_reading: int = attrs.field(default=0, validator=v.ge(0))

    @topics.validator
    def _topics_have_subscribers(self, _attribute: attrs.Attribute[int], topics: int) -> None:
        if self.subscribers and topics > self.subscribers:
            raise ValueError(f"--topics {topics} is more than --subscribers {self.subscribers}")
