"""The Thrift envelope on Kafka records: it round-trips, reads other writers, and rejects garbage."""

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
from hypothesis import example, given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.envelope import SCHEMA_VERSION, Envelope, EnvelopeError, decode, encode
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
# The writers' protocol, made here rather than borrowed from the module under test.
COMPACT = TCompactProtocolFactory()  # type: ignore[no-untyped-call]  # thriftpy2 is untyped
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


def _write(schema: ModuleType, **fields: Any) -> bytes:
    """A record value as `schema`'s writer produces it, in the compact protocol."""
    return bytes(serialize(schema.Envelope(**fields), COMPACT))


def _read(schema: ModuleType, value: bytes) -> Any:
    return deserialize(schema.Envelope(), value, COMPACT)


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


@settings(max_examples=300)
@given(message=messages, origin_node=st.text())
@example(message=attrs.evolve(MESSAGE, body="x" * 100_000, headers=HEADERS), origin_node="eu-1:8080")
@example(
    message=attrs.evolve(MESSAGE, timestamp=datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    origin_node="",
)
def test_any_message_and_origin_node_round_trip(message: Message, origin_node: str) -> None:
    """Headers included, and the timestamp to the millisecond however far from 1970."""
    assert decode(encode(Envelope(message, origin_node))) == Envelope(message, origin_node)


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1000, tzinfo=UTC),
    ],
)
def test_the_timestamp_travels_as_milliseconds_since_the_epoch(
    writer_v1: ModuleType, timestamp: datetime
) -> None:
    record = _read(writer_v1, encode(Envelope(attrs.evolve(MESSAGE, timestamp=timestamp), "n")))
    assert record.timestamp_ms == (timestamp - EPOCH) // timedelta(milliseconds=1)
    assert record.version == SCHEMA_VERSION


def test_headers_travel_in_field_10_which_is_absent_when_there_are_none(writer_v1: ModuleType) -> None:
    """The retired stage times of fields 8 and 9 are never written."""
    headed = _read(writer_v1, encode(Envelope(attrs.evolve(MESSAGE, headers=HEADERS), "n")))
    plain = _read(writer_v1, encode(Envelope(MESSAGE, "n")))
    assert (headed.headers, plain.headers) == (HEADERS, None)
    for record in (headed, plain):
        assert (record.trace_sent_us, record.trace_received_us) == (None, None)


def test_the_retired_stage_times_of_an_older_writer_are_not_read(writer_v1: ModuleType) -> None:
    value = _write(writer_v1, **_fields(), trace_sent_us=1_764_316_513_123_456, trace_received_us=1)
    assert decode(value) == Envelope(MESSAGE, "eu-1:8080")


def test_a_typical_message_is_small_on_the_bus() -> None:
    """The envelope adds little to its text: under twice the length of body, ids and names together."""
    message = Message.create(Topic("news"), Uid("alice"), "see you at the standup in five", WHEN)
    origin = "eu-1.example.net:8080"
    value = encode(Envelope(message=message, origin_node=origin))
    text = [message.id, message.topic.name, message.sender.value, message.body, origin]
    payload = sum(len(part.encode()) for part in text)
    assert payload < len(value) < 2 * payload


# --- other writers -------------------------------------------------------------------------------


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
    writer_v2: ModuleType, message: Message, version: int, meta: tuple[str, list[int]] | None, **added: Any
) -> None:
    """Whatever it puts in fields of every kind added under new ids, and whatever version it claims."""
    value = _write(
        writer_v2,
        **{**_fields(message), "version": version},
        headers=dict(message.headers) or None,
        meta=None if meta is None else writer_v2.Meta(client=meta[0], hops=meta[1]),
        **added,
    )
    assert decode(value).message == message


@pytest.mark.parametrize("field", REQUIRED)
def test_a_record_lacking_a_required_field_is_an_envelope_error_naming_it(
    writer_v1: ModuleType, field: str
) -> None:
    with pytest.raises(EnvelopeError, match=field):
        decode(_write(writer_v1, **{**_fields(), field: None}))


def test_a_record_without_origin_node_or_version_still_decodes(writer_v1: ModuleType) -> None:
    """They are informative: without them the message reads, from origin ''."""
    fields = {**_fields(), "origin_node": None, "version": None}
    assert decode(_write(writer_v1, **fields)) == Envelope(MESSAGE, "")


@pytest.mark.parametrize("field", REQUIRED)
def test_a_required_field_of_another_type_is_read_as_lacking(tmp_path: Path, field: str) -> None:
    other = "double" if field == "timestamp_ms" else "i64"
    idl = re.sub(rf"(\d+): \w+ {field},", rf"\1: {other} {field},", IDL.read_text())
    with _load(tmp_path, idl, f"writer_retyped_{field}_thrift") as schema:
        fields = {**_fields(), field: 7 if other == "i64" else 7.5}
        with pytest.raises(EnvelopeError, match=field):
            decode(_write(schema, **fields))


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
def test_a_record_with_an_invalid_value_is_an_envelope_error(
    writer_v1: ModuleType, field: str, value: object
) -> None:
    """A name breaking the naming rules, a time outside datetime's range, or text that is not UTF-8."""
    with pytest.raises(EnvelopeError):
        decode(_write(writer_v1, **{**_fields(), field: value}))


# --- garbage -------------------------------------------------------------------------------------

# Field 1 (an i32) arrives as a list, set or map whose element type is STOP and whose size is 2**62:
# a reader that skips it element by element, reading nothing per element, never finishes.
_HUGE = bytes([0x80] * 8 + [0x40])  # varint 2**62
VALID = encode(Envelope(MESSAGE, "eu-1:8080"))


GARBAGE = {
    "empty": b"",
    "stop-only": b"\x00",
    "ff": b"\xff" * 16,
    "json": b'{"type":"message"}',
    "truncated-by-one": VALID[:-1],
    "truncated": VALID[:10],
    "structs-nested-2000-deep": bytes([0x1C] * 2000),
    "list-of-2**62-stops": bytes([0x19, 0xF0]) + _HUGE,
    "set-of-2**62-stops": bytes([0x1A, 0xF0]) + _HUGE,
    "map-of-2**62-stops": bytes([0x1B]) + _HUGE + bytes([0x00]),
}


@pytest.mark.parametrize("value", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_an_envelope_error_at_once(value: bytes) -> None:
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


@settings(max_examples=500, deadline=None)
@given(value=st.binary(max_size=64) | _mutations(VALID))
def test_any_bytes_decode_or_raise_envelope_error_and_nothing_else_at_once(value: bytes) -> None:
    with suppress(EnvelopeError):
        _decode_in_time(value)
