"""The Thrift envelope on Kafka records: it round-trips in both protocols, reads other writers in
either, and rejects garbage in either."""

from __future__ import annotations

import re
import signal
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import attrs
import pytest
import thriftpy2
from hypothesis import example, given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TCompactProtocolFactory, TCyBinaryProtocolFactory
from thriftpy2.protocol.binary import TBinaryProtocolFactory
from thriftpy2.transport import TMemoryBuffer
from thriftpy2.utils import deserialize, serialize

from minimess.adapters.kafka import binary_bounds, envelope
from minimess.adapters.kafka.envelope import SCHEMA_VERSION, Envelope, EnvelopeError, decode, encode
from minimess.adapters.kafka.settings import ENVELOPE_PROTOCOLS
from minimess.domain.model import TOPIC_PATTERN, UID_PATTERN, Message, Topic, Uid
from tests.timeouts import scaled

IDL = Path(envelope.__file__).with_name("envelope.thrift")
REQUIRED = ("id", "topic", "sender", "body", "timestamp_ms")
"""The fields without which decode cannot build a Message."""

# A newer writer: this version's struct with fields of every kind added under new ids, as
# envelope.thrift says the schema evolves. This version's reader must skip them all.
IDL_V2 = (
    "struct Meta { 1: string client, 2: list<i32> hops }\n"
    + IDL.read_text().rstrip().removesuffix("}")
    + """
    11: string reply_to,
    12: list<string> tags,
    13: map<string, i64> counts,
    14: Meta meta,
    15: bool pinned,
    16: double score,
    17: set<binary> blobs,
}
"""
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The other writers' protocols, made here rather than borrowed from the module under test; the
# binary one is thriftpy2's pure-Python implementation (thriftpy2.protocol's TBinaryProtocolFactory
# is the Cython one the server uses, where it is built).
WRITERS: dict[str, Any] = {
    "binary": TBinaryProtocolFactory(),  # type: ignore[no-untyped-call]  # thriftpy2 is untyped
    "compact": TCompactProtocolFactory(),  # type: ignore[no-untyped-call]
}
PROTOCOLS = tuple(WRITERS)
each_protocol = pytest.mark.parametrize("protocol", PROTOCOLS)
WHEN = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
HEADERS = {"trace-sent-us": "1764316513123456", "ünïcode": "välue"}
MESSAGE = Message(
    id="0f8c3b2a9d7e4c1b8a6f5e4d3c2b1a09",
    topic=Topic("news"),
    sender=Uid("alice"),
    body="hello, world",
    timestamp=WHEN,
)


@contextmanager
def _load(tmp_path: Path, idl: str, module_name: str) -> Iterator[ModuleType]:
    """An IDL written to tmp_path, loaded as `module_name`, and unregistered again afterwards."""
    path = tmp_path / f"{module_name}.thrift"
    path.write_text(idl)
    try:
        yield thriftpy2.load(str(path), module_name=module_name)
    finally:
        sys.modules.pop(module_name, None)


@pytest.fixture(scope="module")
def writer_v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """Another server of this version, with its own copy of the repository's IDL."""
    with _load(tmp_path_factory.mktemp("v1"), IDL.read_text(), "writer_v1_thrift") as schema:
        yield schema


@pytest.fixture(scope="module")
def writer_v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with _load(tmp_path_factory.mktemp("v2"), IDL_V2, "writer_v2_thrift") as schema:
        yield schema


def _write(schema: ModuleType, protocol: str, **fields: Any) -> bytes:
    """A record value as `schema`'s writer produces it, in `protocol`."""
    return bytes(serialize(schema.Envelope(**fields), WRITERS[protocol]))


def _read(schema: ModuleType, protocol: str, value: bytes) -> Any:
    return deserialize(schema.Envelope(), value, WRITERS[protocol])


def _fields(message: Message = MESSAGE, origin_node: str = "eu-1:8080") -> dict[str, Any]:
    """The fields this version writes for `message`, headers aside."""
    return {
        "version": 1,
        "id": message.id,
        "topic": message.topic.name,
        "sender": message.sender.value,
        "body": message.body,
        "timestamp_ms": (message.timestamp - EPOCH) // timedelta(milliseconds=1),
        "origin_node": origin_node,
    }


class Hung(BaseException):
    """A call ran past its deadline. A BaseException, so that neither decode's `except Exception`
    nor Hypothesis (which would shrink by calling again) catches it."""


@contextmanager
def _returns_within(seconds: float) -> Iterator[None]:
    """Interrupt the block with Hung after `seconds`; restores the alarm pytest-timeout may have set."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            remaining = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)


def _decode_in_time(value: bytes) -> Envelope:
    """Decode `value`, which must take well under a second: more means it hangs."""
    with _returns_within(scaled(1.0)):
        return decode(value)


# --- round trips ---------------------------------------------------------------------------------

topics = st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic)
uids = st.from_regex(UID_PATTERN, fullmatch=True).map(Uid)
# Any four-digit year the wire carries, at the millisecond precision of the bus.
ms_timestamps = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
messages = st.builds(
    Message,
    id=st.text(),
    topic=topics,
    sender=uids,
    body=st.text(),
    timestamp=ms_timestamps,
    headers=st.dictionaries(st.text(), st.text(), max_size=4),
)


@each_protocol
@settings(max_examples=300)
@given(message=messages, origin_node=st.text())
@example(message=attrs.evolve(MESSAGE, body="x" * 100_000, headers=HEADERS), origin_node="eu-1:8080")
@example(
    message=attrs.evolve(MESSAGE, timestamp=datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    origin_node="",
)
def test_any_message_and_origin_node_round_trip(protocol: str, message: Message, origin_node: str) -> None:
    """Headers included, and the timestamp to the millisecond however far from 1970; whichever
    protocol a server writes, every server reads it."""
    assert decode(encode(Envelope(message, origin_node), protocol)) == Envelope(message, origin_node)


def test_the_protocols_a_server_can_write_are_the_settings_choices_and_binary_by_default() -> None:
    assert envelope.PROTOCOLS == ENVELOPE_PROTOCOLS == PROTOCOLS
    assert encode(Envelope(MESSAGE, "n")) == encode(Envelope(MESSAGE, "n"), "binary")


@pytest.mark.parametrize(("protocol", "first"), [("binary", 0x08), ("compact", 0x15)])
def test_a_record_starts_with_its_version_field_whose_first_byte_tells_the_protocol(
    writer_v1: ModuleType, protocol: str, first: int
) -> None:
    """Binary: type i32 (0x08), then the field id 1; compact: delta 1, type i32, in one byte."""
    value = encode(Envelope(MESSAGE, "n"), protocol)
    assert value[0] == first
    assert _read(writer_v1, protocol, value).version == SCHEMA_VERSION


@each_protocol
@pytest.mark.parametrize("first_field", range(1, 11))
def test_whichever_field_comes_first_the_first_byte_tells_the_protocol(
    writer_v1: ModuleType, protocol: str, first_field: int
) -> None:
    """The fields before `first_field` absent: the record is read in its protocol, and lacks them.

    A compact first field header holds the id's delta, 1 to 15 here, in its high nibble (from
    0x10); a binary one starts with the field's type (up to 0x0F).
    """
    fields = {**_fields(), "trace_sent_us": 1, "trace_received_us": 2, "headers": HEADERS}
    by_id = [spec[1] for _, spec in sorted(writer_v1.Envelope.thrift_spec.items())]
    value = _write(writer_v1, protocol, **{name: fields[name] for name in by_id[first_field - 1 :]})
    assert (value[0] >= 0x10) == (protocol == "compact")
    if first_field <= 2:
        assert decode(value) == Envelope(attrs.evolve(MESSAGE, headers=HEADERS), "eu-1:8080")
    else:
        # Read, not refused as garbage: it is the envelope that lacks what a message needs.
        with pytest.raises(EnvelopeError, match="lacks"):
            decode(value)


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1000, tzinfo=UTC),
    ],
)
@each_protocol
def test_the_timestamp_travels_as_milliseconds_since_the_epoch(
    writer_v1: ModuleType, timestamp: datetime, protocol: str
) -> None:
    value = encode(Envelope(attrs.evolve(MESSAGE, timestamp=timestamp), "n"), protocol)
    record = _read(writer_v1, protocol, value)
    assert record.timestamp_ms == (timestamp - EPOCH) // timedelta(milliseconds=1)
    assert record.version == SCHEMA_VERSION


@each_protocol
def test_headers_travel_in_field_10_which_is_absent_when_there_are_none(
    writer_v1: ModuleType, protocol: str
) -> None:
    """The retired stage times of fields 8 and 9 are never written."""
    headed = _read(
        writer_v1, protocol, encode(Envelope(attrs.evolve(MESSAGE, headers=HEADERS), "n"), protocol)
    )
    plain = _read(writer_v1, protocol, encode(Envelope(MESSAGE, "n"), protocol))
    assert (headed.headers, plain.headers) == (HEADERS, None)
    for record in (headed, plain):
        assert (record.trace_sent_us, record.trace_received_us) == (None, None)


@each_protocol
def test_the_retired_stage_times_of_an_older_writer_are_not_read(
    writer_v1: ModuleType, protocol: str
) -> None:
    value = _write(writer_v1, protocol, **_fields(), trace_sent_us=1_764_316_513_123_456, trace_received_us=1)
    assert decode(value) == Envelope(MESSAGE, "eu-1:8080")


@each_protocol
def test_a_typical_message_is_small_on_the_bus(protocol: str) -> None:
    """The envelope adds little to its text: under twice the length of body, ids and names together."""
    message = Message.create(Topic("news"), Uid("alice"), "see you at the standup in five", WHEN)
    origin = "eu-1.example.net:8080"
    value = encode(Envelope(message=message, origin_node=origin), protocol)
    text = [message.id, message.topic.name, message.sender.value, message.body, origin]
    payload = sum(len(part.encode()) for part in text)
    assert payload < len(value) < 2 * payload


# --- other writers -------------------------------------------------------------------------------


@each_protocol
@settings(max_examples=100)
@given(
    message=messages,
    version=st.integers(-(2**31), 2**31 - 1),
    reply_to=st.none() | st.text(),
    tags=st.none() | st.lists(st.text(), max_size=20),
    counts=st.none() | st.dictionaries(st.text(), st.integers(-(2**63), 2**63 - 1), max_size=3),
    meta=st.none() | st.tuples(st.text(), st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3)),
    pinned=st.none() | st.booleans(),
    score=st.none() | st.floats(allow_nan=False),
    blobs=st.none() | st.sets(st.binary(max_size=4), max_size=3),
)
def test_a_newer_writers_record_decodes_to_its_message(
    writer_v2: ModuleType,
    protocol: str,
    message: Message,
    version: int,
    meta: tuple[str, list[int]] | None,
    **added: Any,
) -> None:
    """Whatever it puts in fields of every kind added under new ids, and whatever version it claims."""
    value = _write(
        writer_v2,
        protocol,
        **{**_fields(message), "version": version},
        headers=dict(message.headers) or None,
        meta=None if meta is None else writer_v2.Meta(client=meta[0], hops=meta[1]),
        **added,
    )
    assert decode(value).message == message


@each_protocol
@pytest.mark.parametrize("field", REQUIRED)
def test_a_record_lacking_a_required_field_is_an_envelope_error_naming_it(
    writer_v1: ModuleType, protocol: str, field: str
) -> None:
    with pytest.raises(EnvelopeError, match=field):
        decode(_write(writer_v1, protocol, **{**_fields(), field: None}))


@each_protocol
def test_a_record_without_origin_node_or_version_still_decodes(writer_v1: ModuleType, protocol: str) -> None:
    """They are informative: without them the message reads, from origin ''."""
    fields = {**_fields(), "origin_node": None, "version": None}
    assert decode(_write(writer_v1, protocol, **fields)) == Envelope(MESSAGE, "")


@each_protocol
@pytest.mark.parametrize("field", REQUIRED)
def test_a_required_field_of_another_type_is_read_as_lacking(
    tmp_path: Path, protocol: str, field: str
) -> None:
    other = "double" if field == "timestamp_ms" else "i64"
    idl = re.sub(rf"(\d+): \w+ {field},", rf"\1: {other} {field},", IDL.read_text())
    with _load(tmp_path, idl, f"writer_retyped_{field}_{protocol}_thrift") as schema:
        fields = {**_fields(), field: 7 if other == "i64" else 7.5}
        with pytest.raises(EnvelopeError, match=field):
            decode(_write(schema, protocol, **fields))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic", ""),
        ("topic", "slash/topic"),
        ("sender", ""),
        ("sender", "colon:not-in-uids"),
        ("timestamp_ms", 2**63 - 1),
        ("timestamp_ms", -(2**63)),
        ("timestamp_ms", 10**15),
        # Thrift strings are UTF-8; bytes that are not must not come out as a Message holding bytes.
        ("id", b"caf\xe9 \xff"),
        ("topic", b"caf\xe9 \xff"),
        ("sender", b"caf\xe9 \xff"),
        ("body", b"caf\xe9 \xff"),
        ("origin_node", b"caf\xe9 \xff"),
        ("headers", {b"caf\xe9": "x"}),
        ("headers", {"x": b"caf\xe9"}),
    ],
)
@each_protocol
def test_a_record_with_an_invalid_value_is_an_envelope_error(
    writer_v1: ModuleType, protocol: str, field: str, value: object
) -> None:
    """A name breaking the naming rules, a time outside datetime's range, or text that is not UTF-8."""
    with pytest.raises(EnvelopeError):
        decode(_write(writer_v1, protocol, **{**_fields(), field: value}))


# --- garbage -------------------------------------------------------------------------------------


def _i32(n: int) -> bytes:
    return struct.pack(">i", n)


# Field 1 (an i32) arrives as a list, set or map whose element type is STOP and whose size is 2**62:
# a reader that skips it element by element, reading nothing per element, never finishes.
_HUGE = bytes([0x80] * 8 + [0x40])  # varint 2**62
VALID = encode(Envelope(MESSAGE, "eu-1:8080"), "binary")
VALID_COMPACT = encode(Envelope(MESSAGE, "eu-1:8080"), "compact")
_MAX = 2**31 - 1
# A binary field header: its type, then the i16 id (99: one this schema does not know, so skipped).
_LIST, _SET, _MAP, _UNKNOWN_FIELD = 0x0F, 0x0E, 0x0D, b"\x00\x63"
# A list of 4000 lists, each claiming fewer elements than the value has bytes: every size alone is
# in bounds, their sum is not, and a reader that takes each on its own turns 4000 times that many.
_COUNT = 4000
_NESTED_BINARY = bytes([_LIST]) + _UNKNOWN_FIELD + bytes([_LIST]) + _i32(_COUNT)
_NESTED_BINARY += (b"\x0a" + _i32(10_000)) * _COUNT + b"\x00"  # each of 10,000 i64s
_NESTED_COMPACT = bytes([0x19, 0xF9]) + bytes([0xA0, 0x1F])  # field 1: a list of 4000 lists
_NESTED_COMPACT += bytes([0xF0, 0xE0, 0x5D]) * _COUNT + b"\x00"  # each of 12,000 STOPs


GARBAGE = {
    "empty": b"",
    "stop-only": b"\x00",
    "ff": b"\xff" * 16,
    "json": b'{"type":"message"}',
    "compact-truncated-by-one": VALID_COMPACT[:-1],
    "compact-truncated": VALID_COMPACT[:10],
    "compact-structs-nested-2000-deep": bytes([0x1C] * 2000),
    "compact-list-of-2**62-stops": bytes([0x19, 0xF0]) + _HUGE,
    "compact-set-of-2**62-stops": bytes([0x1A, 0xF0]) + _HUGE,
    "compact-map-of-2**62-stops": bytes([0x1B]) + _HUGE + bytes([0x00]),
    "compact-lists-of-lists-of-stops": _NESTED_COMPACT,
    # ... whose transport would malloc 2 GiB for a string it cannot read (a crash where that fails).
    "compact-id-of-2**31-1-bytes": bytes([0x28]) + b"\xff\xff\xff\xff\x07" + b"abc\x00",
    # thriftpy2's Cython reader alone takes these, reading past the end (a STOP, a made-up number).
    "binary-truncated-by-one": VALID[:-1],
    "binary-version-cut-off": VALID[:5],
    "binary-truncated": VALID[:40],
    "binary-trailing-byte": VALID + b"\x00",
    # ... would malloc 2 GiB and make a string of what it never read (a crash where malloc fails).
    "binary-id-of-2**31-1-bytes": b"\x0b\x00\x02" + _i32(_MAX) + b"abc\x00",
    "binary-id-of-1-MiB-past-the-end": VALID[:10] + _i32(2**20) + VALID[14:],
    "binary-id-of-negative-length": b"\x0b\x00\x02" + _i32(-1) + b"\x00",
    # ... would turn 2**31 times, reading nothing (past the end, or a type it reads nothing for).
    "binary-list-of-2**31-1-i64s": bytes([_LIST]) + _UNKNOWN_FIELD + b"\x0a" + _i32(_MAX) + b"\x00",
    "binary-list-of-2**31-1-stops": bytes([_LIST]) + _UNKNOWN_FIELD + b"\x00" + _i32(_MAX) + b"\x00",
    "binary-set-of-2**31-1-voids": bytes([_SET]) + _UNKNOWN_FIELD + b"\x01" + _i32(_MAX) + b"\x00",
    "binary-map-of-2**31-1-utf16s": bytes([_MAP]) + _UNKNOWN_FIELD + b"\x11\x11" + _i32(_MAX) + b"\x00",
    "binary-version-as-a-list-of-2**31-1-stops": b"\x0f\x00\x01\x00" + _i32(_MAX) + b"\x00",
    "binary-headers-of-2**31-1": b"\x0d\x00\x0a\x0b\x0b" + _i32(_MAX) + b"\x00",
    "binary-list-of-negative-size": bytes([_LIST]) + _UNKNOWN_FIELD + b"\x08" + _i32(-1) + b"\x00",
    "binary-lists-of-lists-of-stops": _NESTED_BINARY,
    # ... reads a type no writer writes as nothing, and the rest of the value as fields.
    "binary-field-of-an-unknown-type": b"\x05" + _UNKNOWN_FIELD + VALID,
    "binary-structs-nested-2000-deep": (b"\x0c" + _UNKNOWN_FIELD) * 2000,
    "binary-lists-nested-2000-deep": bytes([_LIST]) + _UNKNOWN_FIELD + (bytes([_LIST]) + _i32(1)) * 2000,
}


@pytest.mark.parametrize("value", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_an_envelope_error_at_once(value: bytes) -> None:
    with pytest.raises(EnvelopeError):
        _decode_in_time(value)


def test_a_compact_string_longer_than_its_record_is_refused_before_it_is_read() -> None:
    """Not by the transport, which would first allocate the 2 GiB the size claims."""
    with pytest.raises(EnvelopeError, match="a size of 2147483647 in a record of 10 bytes"):
        decode(GARBAGE["compact-id-of-2**31-1-bytes"])


def test_the_nested_garbage_holds_sizes_each_within_its_length() -> None:
    """So that it is their sum that the readers bound, not each one."""
    assert len(_NESTED_BINARY) > 10_000
    assert len(_NESTED_COMPACT) > 12_000


def _mutations(value: bytes) -> st.SearchStrategy[bytes]:
    """`value` truncated, or with one byte replaced, inserted or deleted."""
    n = len(value)
    return st.one_of(
        st.integers(0, n).map(lambda i: value[:i]),
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
            lambda p: value[: p[0]] + bytes([p[1]]) + value[p[0] + 1 :]
        ),
        st.tuples(st.integers(0, n), st.integers(0, 255)).map(
            lambda p: value[: p[0]] + bytes([p[1]]) + value[p[0] :]
        ),
        st.integers(0, n - 1).map(lambda i: value[:i] + value[i + 1 :]),
    )


@settings(max_examples=500, deadline=None)
@given(value=st.binary(max_size=64) | _mutations(VALID) | _mutations(VALID_COMPACT))
def test_any_bytes_decode_or_raise_envelope_error_and_nothing_else_at_once(value: bytes) -> None:
    with suppress(EnvelopeError):
        _decode_in_time(value)


# Not strict: text that is not UTF-8 comes out as bytes, so that reading goes on to the end.
_CYTHON_BINARY: Any = TCyBinaryProtocolFactory()  # type: ignore[no-untyped-call]


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_the_cython_reader_reads_exactly_the_bytes_the_bounds_check_walked(
    writer_v1: ModuleType, writer_v2: ModuleType, data: st.DataObject
) -> None:
    """Followed by more bytes, a value the check lets through leaves them all unread: the Cython
    reader, which reads past the end of what it is given, stayed inside the value.

    Mutations of this version's record and of a newer writer's, with a field of every kind to
    skip (the check walks those as the reader skips them).
    """
    newer = _write(
        writer_v2,
        "binary",
        **_fields(),
        headers=HEADERS,
        tags=["a", "b"],
        counts={"c": 1},
        meta=writer_v2.Meta(client="x", hops=[1, 2]),
        pinned=True,
        score=0.5,
        blobs={b"\x00"},
    )
    for whole in (VALID, newer):
        binary_bounds.check(whole)
    value = data.draw(_mutations(VALID) | _mutations(newer) | _mutations(VALID + b"\x00"))
    with suppress(binary_bounds.MalformedBinary):
        binary_bounds.check(value)
        after = b"\x0b\x00\x07\x00\x00\x00\x03end\x00"  # an origin_node field, then STOP
        transport: Any = TMemoryBuffer(value + after)  # type: ignore[no-untyped-call]
        writer_v1.Envelope().read(_CYTHON_BINARY.get_protocol(transport))
        assert transport.getvalue() == after


@pytest.mark.parametrize(
    ("milliseconds_from_a_bound", "plausible"),
    [(0, True), (1, False)],
)
def test_a_record_is_plausible_from_the_earliest_time_to_max_ahead_of_now_inclusive(
    monkeypatch: pytest.MonkeyPatch, milliseconds_from_a_bound: int, plausible: bool
) -> None:
    """Both bounds to the millisecond: at `earliest` and at now + max_ahead a record is kept, one
    millisecond outside either it is not."""
    now_ns = 1_800_000_000_123_456_789
    monkeypatch.setattr(time, "time_ns", lambda: now_ns)  # the clock the rules read
    rules = envelope.RecordRules()
    earliest_ms = (rules.earliest - envelope.EPOCH) // timedelta(milliseconds=1)
    latest_ms = (now_ns // 1000 + rules.max_ahead // timedelta(microseconds=1)) // 1000
    for timestamp_ms in (earliest_ms - milliseconds_from_a_bound, latest_ms + milliseconds_from_a_bound):
        if plausible:
            rules.check(MESSAGE, timestamp_ms)
        else:
            with pytest.raises(envelope.InvalidRecord, match="is not plausible"):
                rules.check(MESSAGE, timestamp_ms)
