"""Message <-> Kafka record value: the Thrift envelope in the compact protocol."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs
import thriftpy2
from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

from minimess.domain.errors import InvalidName
from minimess.domain.model import Message, Topic, Uid

SCHEMA_VERSION: Final = 1

_PROTOCOL = TCompactProtocolFactory()


class EnvelopeError(Exception):
    """A record value that is not a readable minimess envelope."""


@attrs.frozen
class Envelope:
    """A message as it travels on the bus, with the server it was published on."""

    message: Message
    origin_node: str


@functools.cache
def _envelope_type() -> Any:
    """The Envelope struct, parsed from the IDL when first needed rather than at import."""
    schema = thriftpy2.load(str(Path(__file__).with_name("envelope.thrift")), module_name="envelope_thrift")
    return schema.Envelope


def encode(envelope: Envelope) -> bytes:
    message = envelope.message
    record = _envelope_type()(
        version=SCHEMA_VERSION,
        id=message.id,
        topic=message.topic.name,
        sender=message.sender.value,
        body=message.body,
        timestamp_ms=round(message.timestamp.timestamp() * 1000),
        origin_node=envelope.origin_node,
    )
    return bytes(serialize(record, _PROTOCOL))


def decode(value: bytes) -> Envelope:
    """Read a record value; raise EnvelopeError, and nothing else, when it is not an envelope."""
    try:
        record = deserialize(_envelope_type()(), value, _PROTOCOL)
    except Exception as error:  # thriftpy2 raises many types on garbage; all mean the same here
        raise EnvelopeError(f"not a Thrift envelope: {error!r}") from None
    missing = [
        name for name in ("id", "topic", "sender", "body", "timestamp_ms") if getattr(record, name) is None
    ]
    if missing:
        raise EnvelopeError(f"envelope lacks {', '.join(missing)}")
    try:
        message = Message(
            id=record.id,
            topic=Topic(record.topic),
            sender=Uid(record.sender),
            body=record.body,
            timestamp=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
        )
    except (InvalidName, ValueError, TypeError, OverflowError, OSError) as error:
        raise EnvelopeError(f"invalid envelope: {error}") from None
    return Envelope(message=message, origin_node=record.origin_node or "")
