"""The Thrift envelope on Kafka records: it round-trips, reads newer writers, and rejects garbage."""

from __future__ import annotations

import re
import signal
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
from hypothesis import given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.envelope import SCHEMA_VERSION, Envelope, EnvelopeError, decode, encode
from minimess.domain.model import TOPIC_PATTERN, UID_PATTERN, Message, Topic, Trace, Uid
from tests.timeouts import scaled

IDL = Path(envelope.__file__).with_name("envelope.thrift")
REQUIRED = ("id", "topic", "sender", "body", "timestamp_ms")
"""The fields without which decode cannot build a Message."""

DECODE_WITHIN = 1.0
"""Seconds (before scaling) one decode of a small value may take; more means it hangs."""

# A newer writer: the same struct with fields of every kind added under new ids, as envelope.thrift
# says the schema evolves. A v1 reader must skip them all.
IDL_V2 = """
struct Meta {
    1: string client,
    2: list<i32> hops,
}

struct Envelope {
    1: i32 version,
    2: string id,
    3: string topic,
    4: string sender,
    5: string body,
    6: i64 timestamp_ms,
    7: string origin_node,
    8: i64 trace_sent_us,
    9: i64 trace_received_us,
    10: string reply_to,
    11: list<string> tags,
    12: map<string, i64> counts,
    13: Meta meta,
    14: bool pinned,
    15: double score,
    16: set<binary> blobs,
}
"""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The writers' protocol, made here rather than borrowed from the module under test.
COMPACT = TCompactProtocolFactory()  # type: ignore[no-untyped-call]  # thriftpy2 is untyped
WHEN = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)


def _message(body: str = "hello, world", **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "id": "0f8c3b2a9d7e4c1b8a6f5e4d3c2b1a09",
        "topic": Topic("news"),
        "sender": Uid("alice"),
        "body": body,
        "timestamp": WHEN,
    }
    return Message(**{**fields, **changes})


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
def writer_v1() -> Iterator[ModuleType]:
    """Another server of this version, with its own copy of the repository's IDL."""
    try:
        yield thriftpy2.load(str(IDL), module_name="writer_v1_thrift")
    finally:
        sys.modules.pop("writer_v1_thrift", None)


@pytest.fixture(scope="module")
def writer_v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A server of a later version whose Envelope has more fields."""
    with _load(tmp_path_factory.mktemp("v2"), IDL_V2, "writer_v2_thrift") as schema:
        yield schema


def _write(schema: ModuleType, **fields: Any) -> bytes:
    """A record value as `schema`'s writer produces it, in the compact protocol."""
    return bytes(serialize(schema.Envelope(**fields), COMPACT))


def _v1_fields(message: Message, origin_node: str = "eu-1:8080") -> dict[str, Any]:
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
    """A call ran past its deadline. A BaseException, so that decode's `except Exception` lets it by."""


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
    with _returns_within(scaled(DECODE_WITHIN)):
        return decode(value)


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        _message(),
        _message(""),
        _message("x" * 100_000),
        _message("héllo wörld — 你好 👋🏽 \u200d\x00 \n\t"),
        _message(topic=Topic("a:b.c-d_e"), sender=Uid("Z.9-_")),
        _message(id="", body="an empty id is still a string"),
    ],
    ids=["typical", "empty-body", "long-body", "unicode", "odd-names", "empty-id"],
)
def test_encode_then_decode_gives_the_same_message(message: Message) -> None:
    """Every field of the message, and the origin node, survive encode → decode unchanged."""
    decoded = decode(encode(Envelope(message=message, origin_node="eu-1:8080")))
    assert decoded == Envelope(message=message, origin_node="eu-1:8080")


def test_a_fresh_message_keeps_its_millisecond_timestamp() -> None:
    """Message.create stamps to the millisecond, and that instant is what comes back."""
    message = Message.create(Topic("news"), Uid("alice"), "now", datetime.now(UTC))
    decoded = decode(encode(Envelope(message=message, origin_node="n")))
    assert decoded.message.timestamp == message.timestamp
    assert decoded.message.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1000, tzinfo=UTC),
        WHEN,
    ],
)
def test_timestamps_travel_as_milliseconds_since_the_epoch(
    writer_v1: ModuleType, timestamp: datetime
) -> None:
    """The wire field is integer ms since 1970 UTC, as the IDL says, and reads back to the same instant."""
    value = encode(Envelope(message=_message(timestamp=timestamp), origin_node="n"))
    record = deserialize(writer_v1.Envelope(), value, COMPACT)
    assert record.timestamp_ms == (timestamp - EPOCH) // timedelta(milliseconds=1)
    assert record.version == SCHEMA_VERSION
    assert decode(value).message.timestamp == timestamp


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(1000, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        datetime(2300, 6, 1, 12, 0, 0, 999000, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_timestamps_far_from_now_keep_their_millisecond(timestamp: datetime) -> None:
    """Any four-digit year the wire codec carries comes back to the millisecond, not a float's nearest µs."""
    decoded = decode(encode(Envelope(message=_message(timestamp=timestamp), origin_node="n")))
    assert decoded.message.timestamp == timestamp


def _to_ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


topics = st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic)
uids = st.from_regex(UID_PATTERN, fullmatch=True).map(Uid)
# Instants a server's clock gives, from 1970 to 2200, at the millisecond precision of the bus.
ms_timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(_to_ms)
messages = st.builds(
    Message, id=st.text(), topic=topics, sender=uids, body=st.text(), timestamp=ms_timestamps
)


@settings(max_examples=300)
@given(message=messages, origin_node=st.text())
def test_any_message_round_trips(message: Message, origin_node: str) -> None:
    """Any valid message with a millisecond timestamp, and any origin node, comes back equal."""
    assert decode(encode(Envelope(message=message, origin_node=origin_node))) == Envelope(
        message=message, origin_node=origin_node
    )


TRACE = Trace(sent_us=1_764_316_513_123_456, received_us=1_764_316_513_123_789)


@pytest.mark.parametrize("trace", [None, TRACE, Trace(sent_us=0, received_us=-1)], ids=["none", "now", "odd"])
def test_the_trace_round_trips(trace: Trace | None) -> None:
    """A message's stage times come back as they went, and a message without them comes back without."""
    message = _message(trace=trace)
    assert decode(encode(Envelope(message=message, origin_node="n"))).message == message


def test_the_trace_travels_in_fields_8_and_9(writer_v1: ModuleType) -> None:
    """The stage times are the optional i64 fields trace_sent_us and trace_received_us, absent untraced."""
    traced = deserialize(writer_v1.Envelope(), encode(Envelope(_message(trace=TRACE), "n")), COMPACT)
    assert (traced.trace_sent_us, traced.trace_received_us) == (TRACE.sent_us, TRACE.received_us)
    plain = deserialize(writer_v1.Envelope(), encode(Envelope(_message(), "n")), COMPACT)
    assert (plain.trace_sent_us, plain.trace_received_us) == (None, None)


@pytest.mark.parametrize("present", ["trace_sent_us", "trace_received_us"])
def test_half_a_trace_is_no_trace(writer_v1: ModuleType, present: str) -> None:
    """A record with only one of the two stage times reads as an untraced message."""
    message = _message()
    value = _write(writer_v1, **_v1_fields(message), **{present: 1_764_316_513_123_456})
    assert decode(value).message == message


traces = st.none() | st.builds(Trace, st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=100)
@given(message=messages, trace=traces)
def test_any_traced_message_round_trips(message: Message, trace: Trace | None) -> None:
    """Any valid message with any i64 stage times, or none, comes back equal."""
    traced = attrs.evolve(message, trace=trace)
    assert decode(encode(Envelope(message=traced, origin_node="n"))).message == traced


def test_a_typical_message_is_small_on_the_bus() -> None:
    """The envelope adds little to its text: under twice the length of body, ids and names together."""
    message = Message.create(Topic("news"), Uid("alice"), "see you at the standup in five", WHEN)
    origin = "eu-1.example.net:8080"
    value = encode(Envelope(message=message, origin_node=origin))
    text = [message.id, message.topic.name, message.sender.value, message.body, origin]
    payload = sum(len(part.encode()) for part in text)
    assert payload < len(value) < 2 * payload


# --- other writers -------------------------------------------------------------------------------


def test_a_record_from_a_newer_writer_decodes_to_the_same_message(writer_v2: ModuleType) -> None:
    """A v2 record with added string, list, map, struct, bool, double and set fields reads as v1 did."""
    message = _message()
    value = _write(
        writer_v2,
        **{**_v1_fields(message), "version": 2},
        reply_to="8d5e0c1f",
        tags=["urgent", "ünïcode", ""],
        counts={"seen": 3, "liked": -1},
        meta=writer_v2.Meta(client="web/2.0", hops=[1, 2, 3]),
        pinned=True,
        score=0.5,
        blobs={b"\x00\xff", b""},
    )
    assert decode(value) == Envelope(message=message, origin_node="eu-1:8080")


@settings(max_examples=100)
@given(
    message=messages,
    reply_to=st.none() | st.text(),
    tags=st.none() | st.lists(st.text(), max_size=20),
    pinned=st.none() | st.booleans(),
    version=st.integers(-(2**31), 2**31 - 1),
)
def test_any_newer_record_decodes_to_its_message(
    writer_v2: ModuleType,
    message: Message,
    reply_to: str | None,
    tags: list[str] | None,
    pinned: bool | None,
    version: int,
) -> None:
    """Whatever a v2 writer puts in its new fields, and whatever version it claims, the message reads."""
    fields = {**_v1_fields(message), "version": version}
    value = _write(writer_v2, **fields, reply_to=reply_to, tags=tags, pinned=pinned)
    assert decode(value).message == message


def test_a_record_from_this_version_decodes(writer_v1: ModuleType) -> None:
    """What another server of this version writes with the repository's IDL is read back."""
    message = _message()
    assert decode(_write(writer_v1, **_v1_fields(message))) == Envelope(message, "eu-1:8080")


def test_a_record_without_origin_node_or_version_still_decodes(writer_v1: ModuleType) -> None:
    """origin_node and version are informative: without them the message reads, from origin ''."""
    message = _message()
    fields = {**_v1_fields(message), "origin_node": None, "version": None}
    assert decode(_write(writer_v1, **fields)) == Envelope(message, "")


def _idl_without(field: str) -> str:
    """The repository's IDL minus the line declaring `field`."""
    lines = IDL.read_text().splitlines()
    kept = [line for line in lines if f" {field}," not in line.split("//")[0]]
    assert len(kept) == len(lines) - 1, f"no single declaration of {field} in {IDL}"
    return "\n".join(kept)


@pytest.mark.parametrize("field", REQUIRED)
def test_a_record_from_a_writer_without_a_required_field_is_an_envelope_error(
    tmp_path: Path, field: str
) -> None:
    """A writer whose schema lacks id, topic, sender, body or timestamp_ms: EnvelopeError naming the field."""
    with _load(tmp_path, _idl_without(field), f"writer_without_{field}_thrift") as schema:
        fields = {name: value for name, value in _v1_fields(_message()).items() if name != field}
        with pytest.raises(EnvelopeError, match=field):
            decode(_write(schema, **fields))


@pytest.mark.parametrize("field", REQUIRED)
def test_a_required_field_of_another_type_is_an_envelope_error(tmp_path: Path, field: str) -> None:
    """A writer that declares a required field with another type is read as lacking it."""
    other = "double" if field == "timestamp_ms" else "i64"
    idl = re.sub(rf"(\d+): \w+ {field},", rf"\1: {other} {field},", IDL.read_text())
    with _load(tmp_path, idl, f"writer_retyped_{field}_thrift") as schema:
        fields = {**_v1_fields(_message()), field: 7 if other == "i64" else 7.5}
        with pytest.raises(EnvelopeError, match=field):
            decode(_write(schema, **fields))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic", ""),
        ("topic", "has space"),
        ("topic", "x" * 129),
        ("topic", "slash/topic"),
        ("sender", ""),
        ("sender", "colon:not-in-uids"),
        ("sender", "y" * 65),
        ("timestamp_ms", 2**63 - 1),
        ("timestamp_ms", -(2**63)),
        ("timestamp_ms", 10**15),
    ],
)
def test_a_record_with_an_invalid_value_is_an_envelope_error(
    writer_v1: ModuleType, field: str, value: object
) -> None:
    """A topic or uid breaking the naming rules, or a time outside datetime's range: EnvelopeError."""
    with pytest.raises(EnvelopeError):
        decode(_write(writer_v1, **{**_v1_fields(_message()), field: value}))


@pytest.mark.parametrize("field", ["id", "topic", "sender", "body", "origin_node"])
def test_a_string_field_that_is_not_utf8_is_an_envelope_error(writer_v1: ModuleType, field: str) -> None:
    """Thrift strings are UTF-8; bytes that are not must not come out as a Message holding `bytes`."""
    value = _write(writer_v1, **{**_v1_fields(_message()), field: b"caf\xe9 \xff"})
    try:
        decoded = decode(value)
    except EnvelopeError:
        return
    pytest.fail(f"decoded without error: {decoded!r}")


# --- garbage -------------------------------------------------------------------------------------

# Field 1 (an i32) arrives as a list, set or map whose element type is STOP and whose size is 2**62:
# a reader that skips it element by element, reading nothing per element, never finishes.
_HUGE = bytes([0x80] * 8 + [0x40])  # varint 2**62
ENDLESS_SKIPS = {
    "list-of-stop": bytes([0x19, 0xF0]) + _HUGE,
    "set-of-stop": bytes([0x1A, 0xF0]) + _HUGE,
    "map-of-stop": bytes([0x1B]) + _HUGE + bytes([0x00]),
}


@pytest.mark.parametrize("value", ENDLESS_SKIPS.values(), ids=ENDLESS_SKIPS.keys())
def test_a_huge_collection_of_nothing_is_rejected_at_once(value: bytes) -> None:
    """A few bytes claiming 2**62 empty elements are an EnvelopeError, not a consumer stuck for ever."""
    with pytest.raises(EnvelopeError):
        _decode_in_time(value)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00",
        b"\xff" * 16,
        b'{"type":"message"}',
        encode(Envelope(_message(), "n"))[:-1],
        encode(Envelope(_message(), "n"))[:10],
        bytes([0x1C] * 2000),  # structs nested 2000 deep
    ],
    ids=["empty", "stop-only", "ff", "json", "truncated-by-one", "truncated", "deep-nesting"],
)
def test_known_garbage_is_an_envelope_error(value: bytes) -> None:
    """Empty, truncated, foreign and deeply nested values are EnvelopeErrors."""
    with pytest.raises(EnvelopeError):
        _decode_in_time(value)


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


VALID = encode(Envelope(_message("hi"), "eu-1:8080"))


@settings(max_examples=500, deadline=None)
@given(value=st.binary(max_size=64) | _mutations(VALID))
def test_decode_raises_only_envelope_error_on_any_bytes(value: bytes) -> None:
    """Arbitrary or damaged bytes decode, or raise EnvelopeError; nothing else, and within a second."""
    with suppress(EnvelopeError):
        _decode_in_time(value)
