"""Message <-> Kafka record value: the Thrift envelope in the compact protocol."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import attrs
import thriftpy2
from thriftpy2.protocol.compact import TCompactProtocol, TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

from minimess.domain.errors import InvalidName
from minimess.domain.model import NO_HEADERS, Message, Topic, Uid, check_message_id

SCHEMA_VERSION: Final = 1

# strict_decode: a string field that is not UTF-8 is an error, not a bytes value.
_PROTOCOL = TCompactProtocolFactory(strict_decode=True)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)


class EnvelopeError(Exception):
    """A record value that is not a readable minimess envelope."""


class InvalidRecord(EnvelopeError):
    """An envelope that reads, but holds what no client could have published."""


@attrs.frozen(kw_only=True)
class RecordRules:
    """What a message from the bus must satisfy, as a client's publish would have had to.

    `max_body_bytes`: the body, as JSON text escapes it in a frame, fits in a client's frame;
    timestamps lie between `earliest` and `max_ahead` past this server's clock.
    """

    max_body_bytes: int = 65536
    earliest: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    max_ahead: timedelta = timedelta(days=1)

    def check(self, message: Message) -> None:
        """Raise InvalidRecord when `message` breaks a rule."""
        try:
            check_message_id(message.id)
        except InvalidName as error:
            raise InvalidRecord(str(error)) from None
        body = message.body
        # JSON escapes a character to at most 6 bytes; only a long body needs measuring.
        if len(body) * 6 + 2 > self.max_body_bytes:
            encoded = len(json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if encoded > self.max_body_bytes:
                raise InvalidRecord(f"body of {encoded} bytes as JSON, over {self.max_body_bytes}")
        if not self.earliest <= message.timestamp <= datetime.now(UTC) + self.max_ahead:
            raise InvalidRecord(f"timestamp {message.timestamp.isoformat()} is not plausible")


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


class _BoundedCompactProtocol(TCompactProtocol):
    """The compact protocol, refusing a list, set or map with more elements than the record has bytes.

    Every element takes at least one byte, so such a size is garbage; thriftpy2 would otherwise
    skip that many zero-byte elements, which can keep the event loop busy for ages.
    """

    def __init__(self, trans: Any, limit: int) -> None:
        super().__init__(trans, strict_decode=True)
        self._limit = limit

    def _read_collection_begin(self) -> tuple[int, int]:
        element_type, size = super()._read_collection_begin()
        self._check(size)
        return element_type, size

    def _read_map_begin(self) -> tuple[int, int, int]:
        key_type, value_type, size = super()._read_map_begin()
        self._check(size)
        return key_type, value_type, size

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise EnvelopeError(f"a collection of {size} elements in a record of {self._limit} bytes")


class _BoundedProtocolFactory:
    def __init__(self, limit: int) -> None:
        self._limit = limit

    def get_protocol(self, trans: Any) -> _BoundedCompactProtocol:
        return _BoundedCompactProtocol(trans, self._limit)


def encode(envelope: Envelope) -> bytes:
    message = envelope.message
    record = _envelope_type()(
        version=SCHEMA_VERSION,
        id=message.id,
        topic=message.topic.name,
        sender=message.sender.value,
        body=message.body,
        timestamp_ms=(message.timestamp - EPOCH) // MILLISECOND,
        origin_node=envelope.origin_node,
        headers=dict(message.headers) if message.headers else None,
    )
    return bytes(serialize(record, _PROTOCOL))


def decode(value: bytes, rules: RecordRules | None = None) -> Envelope:
    """Read a record value; raise EnvelopeError, and nothing else, when it is not an envelope.

    With `rules`, an envelope whose message breaks them raises InvalidRecord.
    """
    try:
        record = deserialize(_envelope_type()(), value, _BoundedProtocolFactory(len(value)))
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
            timestamp=EPOCH + record.timestamp_ms * MILLISECOND,
            headers=record.headers or NO_HEADERS,
        )
    except (InvalidName, ValueError, TypeError, OverflowError, OSError) as error:
        raise EnvelopeError(f"invalid envelope: {error}") from None
    if rules is not None:
        rules.check(message)
    return Envelope(message=message, origin_node=record.origin_node or "")
