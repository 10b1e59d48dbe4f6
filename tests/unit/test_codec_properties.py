"""Properties of the wire codec on generated input: it never crashes and its encodings round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minimess.adapters.websocket.codec import (
    MAX_REF_LENGTH,
    ClientFrame,
    FrameError,
    Pub,
    Sub,
    Unsub,
    client_frame_text,
    format_timestamp,
    message_frame,
    message_from_document,
    parse_client_frame,
    parse_timestamp,
)
from minimess.domain.model import TOPIC_PATTERN, UID_PATTERN, Message, Topic, Uid
from tests.unit.wire import decode_server_frame, replies_to

ERROR_CODES = {"bad_frame", "unknown_type", "bad_topic"}

topics = st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic)
uids = st.from_regex(UID_PATTERN, fullmatch=True).map(Uid)
# Valid Unicode text: what a client can type. st.text() leaves out lone surrogates.
bodies = st.text()
refs = st.none() | st.text(max_size=MAX_REF_LENGTH)
client_frames: st.SearchStrategy[ClientFrame] = st.one_of(
    st.builds(Sub, topics, refs),
    st.builds(Unsub, topics, refs),
    st.builds(Pub, topics, bodies, refs),
)
# Timestamps as the clock gives them: UTC, in years RFC 3339 can write with four digits.
timestamps = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)

# Any string JSON can carry, lone surrogates included (a client may send "\ud800" escaped).
# (st.characters' own surrogate category is merged away in a union of characters, hence chr.)
json_characters = st.characters(codec=None) | st.integers(0xD800, 0xDFFF).map(chr)
json_strings = st.text(json_characters)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | json_strings,
    lambda children: st.lists(children) | st.dictionaries(json_strings, children),
    max_leaves=20,
)
# Objects shaped like client frames, so that generated input also gets past the first checks.
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["sub", "unsub", "pub", "message", ""]) | json_values,
        "topic": topics.map(str) | json_values,
        "body": json_strings | json_values,
        "ref": st.none() | st.text(json_characters, max_size=MAX_REF_LENGTH + 2) | json_values,
    },
)
# Well-formed frames whose strings are anything JSON can carry: the parser accepts most of them.
well_formed = st.fixed_dictionaries(
    {"type": st.sampled_from(["sub", "unsub", "pub"]), "topic": topics.map(str), "body": json_strings},
    optional={"ref": st.none() | st.text(json_characters, max_size=MAX_REF_LENGTH)},
)
any_json = json_values | frame_like | well_formed


def _parse(data: str | bytes) -> ClientFrame | FrameError:
    """The frame parse_client_frame returns, or the FrameError it raises (any other error escapes)."""
    try:
        return parse_client_frame(data)
    except FrameError as error:
        return error


def _at_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@given(st.text())
@example("[" * 100_000)
@example('{"type":"pub","topic":"t","body":' + "[" * 100_000)
@example("1" * 5000)
@example("NaN")
def test_parse_client_frame_on_any_text_returns_a_frame_or_raises_frame_error(text: str) -> None:
    """Arbitrary text is either a client frame or a FrameError with a protocol error code."""
    outcome = _parse(text)
    if isinstance(outcome, FrameError):
        assert outcome.code in ERROR_CODES
    else:
        assert isinstance(outcome, Sub | Unsub | Pub)


@given(st.binary())
def test_parse_client_frame_on_any_bytes_raises_bad_frame(data: bytes) -> None:
    """Any binary frame is a bad_frame."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(data)
    assert caught.value.code == "bad_frame"


@given(any_json)
@settings(max_examples=300)
def test_parse_client_frame_on_any_json_returns_a_frame_or_raises_frame_error(value: Any) -> None:
    """Any JSON document, frame-shaped or not, is either a client frame or a FrameError."""
    outcome = _parse(json.dumps(value))
    if isinstance(outcome, FrameError):
        assert outcome.code in ERROR_CODES
        assert outcome.ref is None or (isinstance(outcome.ref, str) and len(outcome.ref) <= MAX_REF_LENGTH)
    else:
        assert isinstance(outcome, Sub | Unsub | Pub)


@given(any_json)
@settings(max_examples=300)
def test_the_server_can_answer_any_json_frame(value: Any) -> None:
    """Whatever JSON a client sends, the replies it gets (message, ack, confirmation or error) encode."""
    assert replies_to(json.dumps(value))


@given(client_frames)
def test_client_frames_round_trip(frame: ClientFrame) -> None:
    """A generated valid client frame, encoded as a client does, parses back to itself."""
    assert parse_client_frame(client_frame_text(frame)) == frame


@given(st.uuids().map(lambda u: u.hex), topics, uids, bodies, timestamps)
def test_message_frames_round_trip(
    message_id: str, topic: Topic, sender: Uid, body: str, moment: datetime
) -> None:
    """A message frame read back by a client equals the message, at millisecond precision."""
    message = Message(id=message_id, topic=topic, sender=sender, body=body, timestamp=moment)
    read_back = message_from_document(decode_server_frame(message_frame(message)))
    assert read_back == Message(
        id=message_id, topic=topic, sender=sender, body=body, timestamp=_at_ms(moment)
    )


@given(timestamps)
def test_timestamps_round_trip_at_millisecond_precision(moment: datetime) -> None:
    """parse_timestamp(format_timestamp(t)) is t truncated to the millisecond, still in UTC."""
    text = format_timestamp(moment)
    assert len(text) == len("2026-11-28T03:55:13.123Z")
    assert text.endswith("Z")
    assert parse_timestamp(text) == _at_ms(moment)
