"""Message <-> Kafka record value: the Thrift envelope, written in the binary or the compact protocol
and read in either."""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import attrs
import thriftpy2
from thriftpy2.protocol import TCyBinaryProtocolFactory
from thriftpy2.protocol.compact import TCompactProtocol, TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

from minimess.adapters.kafka import binary_bounds
from minimess.domain.errors import InvalidName
from minimess.domain.model import NO_HEADERS, Message, Position, Topic, Uid, check_message_id

SCHEMA_VERSION: Final = 1

# The protocols a server writes with, by name; the binary one also reads (the compact one reads
# through _BoundedCompactProtocol). strict_decode: a string field that is not UTF-8 is an error,
# not a bytes value. The binary one is thriftpy2's Cython protocol: several times cheaper than its
# pure-Python compact one ("The envelope's protocol" in docs/performance.md), for a third more
# bytes.
_FACTORIES: Final[dict[str, Any]] = {
    "binary": TCyBinaryProtocolFactory(strict_decode=True),
    "compact": TCompactProtocolFactory(strict_decode=True),
}
PROTOCOLS: Final = tuple(_FACTORIES)
"""What a server can write, by name (KafkaSettings.kafka_envelope_protocol); it reads both."""

# The first byte of a value tells its protocol. A binary struct starts with a field's type (2 to
# 15; 0x08 for field 1, the i32 version) or STOP (0), which ends an empty struct. A compact field
# header packs the field id's delta from the previous one into the high nibble, 1 to 15 for a
# first field with an id from 1 to 15 (0x15: field 1, type i32), so a compact value from any
# writer of this schema starts at 0x10 or above. Below: binary (an empty compact struct, 0x00,
# reads the same in both; a compact one starting with a field above 15, in the long form below
# 0x10, would lack fields 1 to 15, so it is no message in either); from 0x10: compact.
_FIRST_COMPACT_BYTE: Final = 0x10
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)
MICROSECOND: Final = timedelta(microseconds=1)


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
    # The time bounds in microseconds since 1970: every record is held to them, and integers
    # compare at a fraction of the cost of making a datetime for now and comparing datetimes.
    _earliest_us: int = attrs.field(init=False, repr=False, eq=False)
    _ahead_us: int = attrs.field(init=False, repr=False, eq=False)

    @_earliest_us.default
    def _earliest_in_microseconds(self) -> int:
        return (self.earliest - EPOCH) // MICROSECOND

    @_ahead_us.default
    def _ahead_in_microseconds(self) -> int:
        return self.max_ahead // MICROSECOND

    def check(self, message: Message, timestamp_ms: int) -> None:
        """Raise InvalidRecord when `message` breaks a rule; `timestamp_ms` is its time as the
        record carries it, in milliseconds since 1970."""
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
        if not self._earliest_us <= timestamp_ms * 1000 <= time.time_ns() // 1000 + self._ahead_us:
            raise InvalidRecord(f"timestamp {message.timestamp.isoformat()} is not plausible")


@attrs.frozen
class Envelope:
    """A message as it travels on the bus, with the server it was published on."""

    message: Message
    origin_node: str


# Topics and senders repeat from record to record: a name already checked is not checked again.
# Bounded, as the names come from the bus; frozen values, so one instance serves every message.
@functools.lru_cache(maxsize=4096)
def _topic(name: str) -> Topic:
    return Topic(name)


@functools.lru_cache(maxsize=4096)
def _uid(name: str) -> Uid:
    return Uid(name)


@functools.cache
def _envelope_type() -> Any:
    """The Envelope struct, parsed from the IDL when first needed rather than at import."""
    schema = thriftpy2.load(str(Path(__file__).with_name("envelope.thrift")), module_name="envelope_thrift")
    return schema.Envelope


class _BoundedCompactProtocol(TCompactProtocol):
    """The compact protocol, refusing any size larger than the record, and lists, sets and maps
    with more elements, all together, than the record has bytes.

    Every element takes at least one byte, so such a size is garbage; thriftpy2 would otherwise
    skip that many zero-byte elements, which can keep the event loop busy for ages. The bound is
    on the sum, not on each size: a list of lists, each of as many zero-byte elements as the
    record has bytes, would otherwise cost the square of its length.
    """

    def __init__(self, trans: Any, limit: int) -> None:
        super().__init__(trans, strict_decode=True)
        self._limit = limit
        self._left = limit

    def _read_size(self) -> int:
        # A string or binary longer than the record is garbage too, and the transport would
        # allocate that much before finding out (a crash where the allocation fails).
        size: int = super()._read_size()
        if size > self._limit:
            raise EnvelopeError(f"a size of {size} in a record of {self._limit} bytes")
        return size

    def _read_collection_begin(self) -> tuple[int, int]:
        element_type, size = super()._read_collection_begin()
        self._check(size)
        return element_type, size

    def _read_map_begin(self) -> tuple[int, int, int]:
        key_type, value_type, size = super()._read_map_begin()
        self._check(size)
        return key_type, value_type, size

    def _check(self, size: int) -> None:
        self._left -= size
        if self._left < 0:
            raise EnvelopeError(f"a collection of {size} elements in a record of {self._limit} bytes")


class _BoundedProtocolFactory:
    def __init__(self, limit: int) -> None:
        self._limit = limit

    def get_protocol(self, trans: Any) -> _BoundedCompactProtocol:
        return _BoundedCompactProtocol(trans, self._limit)


def encode(envelope: Envelope, protocol: str = "binary") -> bytes:
    """The record value of `envelope`, in the protocol named (one of PROTOCOLS)."""
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
    return bytes(serialize(record, _FACTORIES[protocol]))


def decode(value: bytes, rules: RecordRules | None = None, position: Position | None = None) -> Envelope:
    """Read a record value; raise EnvelopeError, and nothing else, when it is not an envelope.

    The first byte tells the protocol (see _FIRST_COMPACT_BYTE). With `rules`, an envelope whose
    message breaks them raises InvalidRecord. The message has `position`, where the record lies
    (given here because a message made again to add it would be checked again).
    """
    try:
        if not value or value[0] < _FIRST_COMPACT_BYTE:
            # Checked first: the Cython reader trusts every size it reads (see binary_bounds).
            binary_bounds.check(value)
            record = deserialize(_envelope_type()(), value, _FACTORIES["binary"])
        else:
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
            topic=_topic(record.topic),
            sender=_uid(record.sender),
            body=record.body,
            timestamp=EPOCH + record.timestamp_ms * MILLISECOND,
            headers=record.headers or NO_HEADERS,
            position=position,
        )
    except (InvalidName, ValueError, TypeError, OverflowError, OSError) as error:
        raise EnvelopeError(f"invalid envelope: {error}") from None
    if rules is not None:
        rules.check(message, record.timestamp_ms)
    return Envelope(message=message, origin_node=record.origin_node or "")
