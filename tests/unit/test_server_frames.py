"""Frames a server sends: whole unmasked text frames holding the documented JSON, read back by a client."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from minimess.adapters.wire.server_frames import (
    ack_document,
    ack_frame,
    error_frame,
    message_document,
    message_frame,
    message_from_document,
    payload,
    subscribed_frame,
    success_frame,
    text_frame,
    time_frame,
    unsubscribed_frame,
)
from minimess.domain.model import (
    EPOCH_PATTERN,
    MAX_OFFSET,
    TOPIC_PATTERN,
    UID_PATTERN,
    Message,
    Position,
    Topic,
    Uid,
)
from tests.unit.wire import decode_server_frame

NEWS = Topic("news")
NOW = datetime(2026, 11, 28, 3, 55, 13, 123456, tzinfo=UTC)
AT = Position("mem-0123456789abcdef", 41)
MESSAGE = Message(
    id="m-1", topic=Topic("a:b"), sender=Uid("alice"), body="héllo 🚀", timestamp=NOW, position=AT
)
UNPLACED = attrs.evolve(MESSAGE, position=None)


@pytest.mark.parametrize(
    ("data", "document"),
    [
        (
            success_frame(Uid("bob"), "node-1", (NEWS, Topic("a:b")), 65536),
            {
                "type": "success",
                "uid": "bob",
                "node": "node-1",
                "topics": ["news", "a:b"],
                "max_message_bytes": 65536,
            },
        ),
        (time_frame(NOW), {"type": "time", "ts": "2026-11-28T03:55:13.123Z"}),
        (
            message_frame(MESSAGE),
            {
                "type": "message",
                "id": "m-1",
                "topic": "a:b",
                "from": "alice",
                "body": "héllo 🚀",
                "ts": "2026-11-28T03:55:13.123Z",
                "offset": 41,
                "epoch": "mem-0123456789abcdef",
            },
        ),
        (
            subscribed_frame(NEWS, AT),
            {"type": "subscribed", "topic": "news", "offset": 41, "epoch": "mem-0123456789abcdef"},
        ),
        (
            subscribed_frame(NEWS, AT, recovered=True),
            {
                "type": "subscribed",
                "topic": "news",
                "offset": 41,
                "epoch": "mem-0123456789abcdef",
                "recovered": True,
            },
        ),
        (
            subscribed_frame(NEWS, None, recovered=False),
            {"type": "subscribed", "topic": "news", "offset": None, "epoch": None, "recovered": False},
        ),
        (unsubscribed_frame(NEWS), {"type": "unsubscribed", "topic": "news"}),
        (
            ack_frame("c-1", MESSAGE),
            {"type": "ack", "ref": "c-1", "id": "m-1", "offset": 41, "epoch": "mem-0123456789abcdef"},
        ),
        (
            ack_frame(None, UNPLACED),
            {"type": "ack", "ref": None, "id": "m-1", "offset": None, "epoch": None},
        ),
        (
            error_frame("bad_topic", "invalid topic", "c-1"),
            {"type": "error", "code": "bad_topic", "reason": "invalid topic", "ref": "c-1"},
        ),
        (
            error_frame("bad_frame", "not JSON"),
            {"type": "error", "code": "bad_frame", "reason": "not JSON", "ref": None},
        ),
    ],
    ids=[
        "success",
        "time",
        "message",
        "subscribed",
        "subscribed-recovered",
        "subscribed-unknown-position",
        "unsubscribed",
        "ack",
        "ack-no-ref-no-position",
        "error",
        "error-no-ref",
    ],
)
def test_every_server_frame_is_one_text_frame_holding_the_documented_object(
    data: bytes, document: dict[str, object]
) -> None:
    assert decode_server_frame(data) == document


# Timestamps as a clock gives them: UTC, in the years RFC 3339 writes with four digits.
timestamps = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)


@given(
    st.uuids().map(lambda u: u.hex),
    st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic),
    st.from_regex(UID_PATTERN, fullmatch=True).map(Uid),
    st.text(),
    timestamps,
)
# Bodies whose frames need the 7-bit, 16-bit and 64-bit WebSocket payload lengths.
@example("m-1", NEWS, Uid("alice"), "x" * 100, NOW)
@example("m-1", NEWS, Uid("alice"), "x" * 200, NOW)
@example("m-1", NEWS, Uid("alice"), "x" * 70_000, NOW)
def test_a_client_reads_a_message_frame_back_into_the_message_at_millisecond_precision(
    message_id: str, topic: Topic, sender: Uid, body: str, moment: datetime
) -> None:
    message = Message(id=message_id, topic=topic, sender=sender, body=body, timestamp=moment)
    read_back = message_from_document(decode_server_frame(message_frame(message)))
    at_ms = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert read_back == Message(id=message_id, topic=topic, sender=sender, body=body, timestamp=at_ms)


@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70_000]).map(lambda size: b"x" * size))
def test_a_text_frame_is_the_frame_websockets_would_write(data: bytes) -> None:
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


positions = st.none() | st.builds(
    Position, st.from_regex(EPOCH_PATTERN, fullmatch=True), st.integers(min_value=-1, max_value=MAX_OFFSET)
)


# Any text where the message has one, ids included, so that every string's escaping is compared.
@given(
    st.text(),
    st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic),
    st.from_regex(UID_PATTERN, fullmatch=True).map(Uid),
    st.text(),
    timestamps,
    positions,
)
@example('"quoted\\', NEWS, Uid("alice"), 'a "b" \\ \n\t\x00\x1f\u2028 é 🚀', NOW, AT)
def test_a_message_frame_is_its_document_encoded(
    message_id: str, topic: Topic, sender: Uid, body: str, moment: datetime, position: Position | None
) -> None:
    message = Message(
        id=message_id, topic=topic, sender=sender, body=body, timestamp=moment, position=position
    )
    assert message_frame(message) == text_frame(payload(message_document(message)))


@given(st.none() | st.text(), st.text(), positions)
@example('a "ref" \\ \n é', "m-1", AT)
def test_an_ack_frame_is_its_document_encoded(
    ref: str | None, message_id: str, position: Position | None
) -> None:
    message = attrs.evolve(MESSAGE, id=message_id, position=position)
    assert ack_frame(ref, message) == text_frame(payload(ack_document(ref, message)))
