"""What an operator can tune on the Kafka bus, with each option's default, range and help."""

from __future__ import annotations

import math

import attrs
from attrs import validators as v


@attrs.frozen(kw_only=True)
class KafkaSettings:
    """Where Kafka is, the one topic every server shares, and how long a publish may take."""

    kafka_bootstrap: str = attrs.field(
        default="localhost:9092", metadata={"help": "--broker kafka: Kafka's host:port list."}
    )
    kafka_topic: str = attrs.field(
        default="minimess.messages",
        validator=v.matches_re(r"[A-Za-z0-9._-]{1,249}"),
        metadata={"help": "--broker kafka: the Kafka topic all servers share."},
    )
    # Only used when the topic is created.
    kafka_partitions: int = attrs.field(
        default=12, validator=v.ge(1), metadata={"help": "--broker kafka: partitions when creating it."}
    )
    publish_timeout: float = attrs.field(
        default=5.0,
        validator=[v.gt(0), v.lt(math.inf)],
        metadata={"help": "Seconds until a publish is refused or, once handed to Kafka, unknown."},
    )
    recovery_limit: int = attrs.field(
        default=10_000,
        validator=[v.ge(0), v.le(1_000_000)],
        metadata={"help": "--broker kafka: Kafka records one recovery may read past the history."},
    )
