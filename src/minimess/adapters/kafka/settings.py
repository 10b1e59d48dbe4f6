"""What an operator can tune on the Kafka bus, with each option's default, range and help."""

from __future__ import annotations

import math
import os

import attrs
from attrs import validators as v

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# The Thrift protocols of the envelope (envelope.PROTOCOLS, named here so that reading the settings
# does not import Thrift): a server reads both, and writes the one chosen.
ENVELOPE_PROTOCOLS = ("binary", "compact")


def _readable_file(_settings: object, attribute: attrs.Attribute[str | None], path: str | None) -> None:
    """A file the server can read now: a typo shows at start rather than at Kafka's first connection."""
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(f"{attribute.name!r} {path} is not a readable file")


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
    kafka_security_protocol: str = attrs.field(
        default="PLAINTEXT",
        validator=v.in_(SECURITY_PROTOCOLS),
        metadata={"help": "--broker kafka: how to connect to Kafka.", "choices": SECURITY_PROTOCOLS},
    )
    kafka_sasl_mechanism: str = attrs.field(
        default="PLAIN",
        validator=v.in_(SASL_MECHANISMS),
        metadata={"help": "SASL_*: how to authenticate to Kafka.", "choices": SASL_MECHANISMS},
    )
    kafka_sasl_username: str | None = attrs.field(
        default=None, metadata={"help": "SASL_*: the servers' Kafka user."}
    )
    kafka_sasl_password_file: str | None = attrs.field(
        default=None, validator=_readable_file, metadata={"help": "SASL_*: a file holding its password."}
    )
    kafka_ssl_cafile: str | None = attrs.field(
        default=None,
        validator=_readable_file,
        metadata={"help": "SSL, SASL_SSL: CA certificates to verify Kafka with; default the system's."},
    )
    kafka_ssl_certfile: str | None = attrs.field(
        default=None,
        validator=_readable_file,
        metadata={"help": "SSL, SASL_SSL: a client certificate (PEM)."},
    )
    kafka_ssl_keyfile: str | None = attrs.field(
        default=None, validator=_readable_file, metadata={"help": "SSL, SASL_SSL: its private key (PEM)."}
    )
    # compact: what servers before the binary protocol read; see "Evolving the envelope" in docs/kafka.md.
    kafka_envelope_protocol: str = attrs.field(
        default="binary",
        validator=v.in_(ENVELOPE_PROTOCOLS),
        metadata={
            "help": "--broker kafka: the Thrift protocol of the records this server writes; it reads both.",
            "choices": ENVELOPE_PROTOCOLS,
        },
    )

    def __attrs_post_init__(self) -> None:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password_file is None):
            raise ValueError(
                f"--kafka-security-protocol {self.kafka_security_protocol} needs --kafka-sasl-username"
                " and --kafka-sasl-password-file"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("--kafka-ssl-certfile and --kafka-ssl-keyfile go together")
