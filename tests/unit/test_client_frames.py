"""Frames a client sends: the server's strict parser, and the client's encoder it must agree with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minimess.adapters.wire.client_frames import (
    MAX_REF_LENGTH,
    MAX_SENT_US,
    ClientFrame,
    FrameError,
    Pub,
    Sub,
    Unsub,
    client_frame_text,
    parse_client_frame,
)
from minimess.adapters.wire.server_frames import ack_frame, error_frame, message_frame, subscribed_frame
from minimess.domain.model import (
    EPOCH_PATTERN,
    MAX_OFFSET,
    MESSAGE_ID_PATTERN,
    TOPIC_PATTERN,
    Message,
    Position,
    Topic,
    Uid,
)

NEWS = Topic("news")
ERROR_CODES = {"bad_frame", "unknown_type", "bad_topic"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"sub","topic":"news"}', Sub(NEWS)),
        ('{"type":"unsub","topic":"news","ref":"c-2"}', Unsub(NEWS, "c-2")),
        ('{"type":"pub","topic":"news","body":"hi","ref":"c-3"}', Pub(NEWS, "hi", "c-3")),
        ('{"ref":null,"body":"","topic":"a:b","type":"pub"}', Pub(Topic("a:b"), "")),
        ('{"type":"sub","topic":"news","extra":[1,2]}', Sub(NEWS)),
        ('  {"type":"sub","topic":"news"}\n', Sub(NEWS)),
        ('{"type":"pub","topic":"news","body":"h\\u00e9 \\ud83d\\ude80"}', Pub(NEWS, "hé 🚀")),
        ('{"type":"sub","topic":"news","ref":""}', Sub(NEWS, "")),
        (json.dumps({"type": "sub", "topic": "news", "ref": "r" * MAX_REF_LENGTH}), Sub(NEWS, "r" * 128)),
        ('{"type":"pub","topic":"news","body":"hi","sent":null}', Pub(NEWS, "hi")),
        ('{"type":"pub","topic":"news","body":"hi","sent":0}', Pub(NEWS, "hi", sent=0)),
        (
            f'{{"type":"pub","topic":"news","body":"hi","sent":{MAX_SENT_US - 1}}}',
            Pub(NEWS, "hi", sent=2**53 - 1),
        ),
        ('{"type":"sub","topic":"news","since":null}', Sub(NEWS)),
        (
            '{"type":"sub","topic":"news","since":{"epoch":"k.3","offset":-1}}',
            Sub(NEWS, since=Position("k.3", -1)),
        ),
        (
            f'{{"type":"sub","topic":"news","since":{{"epoch":"m","offset":{MAX_OFFSET}}}}}',
            Sub(NEWS, since=Position("m", MAX_OFFSET)),
        ),
        (
            '{"type":"pub","topic":"news","body":"hi","id":"' + "A_-9" * 4 + '"}',
            Pub(NEWS, "hi", id="A_-9" * 4),
        ),
        ('{"type":"pub","topic":"news","body":"hi","id":"' + "x" * 64 + '"}', Pub(NEWS, "hi", id="x" * 64)),
    ],
)
def test_valid_frames_are_read(text: str, expected: ClientFrame) -> None:
    assert parse_client_frame(text) == expected


PUB_SENT = '{"type":"pub","topic":"news","body":"hi","ref":"c-1","sent":%s}'
SUB_SINCE = '{"type":"sub","topic":"news","ref":"c-1","since":%s}'
PUB_ID = '{"type":"pub","topic":"news","body":"hi","ref":"c-1","id":%s'


@pytest.mark.parametrize(
    ("data", "code", "ref"),
    [
        # Not a JSON object.
        ("", "bad_frame", None),
        ("not json", "bad_frame", None),
        ('{"type":"sub","topic":"news"', "bad_frame", None),
        ("null", "bad_frame", None),
        ('[{"type":"sub","topic":"news"}]', "bad_frame", None),
        (b'{"type":"sub","topic":"news"}', "bad_frame", None),
        ("[" * 100_000, "bad_frame", None),
        ('{"a":' * 100_000, "bad_frame", None),
        # The type.
        ("{}", "bad_frame", None),
        ('{"type":7,"topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"hello","topic":"news","ref":"r1"}', "unknown_type", "r1"),
        ('{"type":"SUB","topic":"news"}', "unknown_type", None),
        ('{"type":"message","topic":"news"}', "unknown_type", None),
        # The topic.
        ('{"type":"sub","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"unsub","topic":5,"ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":["news"],"body":"hi","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"sub","topic":"","ref":"r1"}', "bad_topic", "r1"),
        ('{"type":"pub","topic":"bad topic","body":"hi","ref":"r1"}', "bad_topic", "r1"),
        ('{"type":"unsub","topic":"a/b"}', "bad_topic", None),
        # The body.
        ('{"type":"pub","topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":"news","body":{"text":"hi"},"ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":"news","body":[' + "[" * 100_000, "bad_frame", None),
        # The ref: echoed in the error only when it is one.
        ('{"type":"sub","topic":"news","ref":5}', "bad_frame", None),
        (json.dumps({"type": "sub", "topic": "news", "ref": "r" * (MAX_REF_LENGTH + 1)}), "bad_frame", None),
        # Lone surrogates, which JSON escapes allow and UTF-8 cannot carry back in a reply.
        (json.dumps({"type": "pub", "topic": "news", "body": "\ud800", "ref": "c-1"}), "bad_frame", "c-1"),
        (json.dumps({"type": "pub", "topic": "news", "body": "hi", "ref": "\udc00"}), "bad_frame", None),
        (json.dumps({"type": "nope", "topic": "bad topic", "ref": "\ud800"}), "bad_frame", None),
        # The send time: a natural number of microseconds below 2**53.
        (PUB_SENT % "true", "bad_frame", "c-1"),
        (PUB_SENT % "-1", "bad_frame", "c-1"),
        (PUB_SENT % MAX_SENT_US, "bad_frame", "c-1"),
        (PUB_SENT % "1e15", "bad_frame", "c-1"),
        (PUB_SENT % "1764300000123456.5", "bad_frame", "c-1"),
        (PUB_SENT % '"1764300000123456"', "bad_frame", "c-1"),
        # The position to recover after: an epoch and an offset from -1 to 2**63 - 1.
        (SUB_SINCE % '"k.3:5"', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"k.3"}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"k.3","offset":-2}', "bad_frame", "c-1"),
        (SUB_SINCE % f'{{"epoch":"k.3","offset":{MAX_OFFSET + 1}}}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"k.3","offset":true}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"k.3","offset":1.0}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"","offset":1}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":"a:b","offset":1}', "bad_frame", "c-1"),
        (SUB_SINCE % '{"epoch":5,"offset":1}', "bad_frame", "c-1"),
        # A client's message id: 16 to 64 of [A-Za-z0-9_-].
        (PUB_ID % '"' + "x" * 15 + '"}', "bad_frame", "c-1"),
        (PUB_ID % '"' + "x" * 65 + '"}', "bad_frame", "c-1"),
        (PUB_ID % '"sixteen.chars.ok"}', "bad_frame", "c-1"),
        (PUB_ID % "1234567890123456789}", "bad_frame", "c-1"),
    ],
)
def test_an_invalid_frame_is_a_frame_error_with_its_code_and_the_ref_if_valid(
    data: str | bytes, code: str, ref: str | None
) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(data)
    assert (caught.value.code, caught.value.ref) == (code, ref)
    assert caught.value.reason


topics = st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic)
refs = st.none() | st.text(max_size=MAX_REF_LENGTH)
positions = st.builds(Position, st.from_regex(EPOCH_PATTERN, fullmatch=True), st.integers(-1, MAX_OFFSET))
message_ids = st.from_regex(MESSAGE_ID_PATTERN, fullmatch=True)
client_frames: st.SearchStrategy[ClientFrame] = st.one_of(
    st.builds(Sub, topics, refs, st.none() | positions),
    st.builds(Unsub, topics, refs),
    # st.text() is valid Unicode, without lone surrogates: what a client can type.
    st.builds(
        Pub, topics, st.text(), refs, st.none() | st.integers(0, MAX_SENT_US - 1), st.none() | message_ids
    ),
)


@given(client_frames)
@example(Pub(NEWS, 'quotes " and \\ backslashes\nand\ttabs \u2028 \x00', "réf"))
def test_a_frame_encoded_as_a_client_does_parses_back_to_itself(frame: ClientFrame) -> None:
    assert parse_client_frame(client_frame_text(frame)) == frame


# Any string JSON can carry, lone surrogates included (a client may send "\ud800" escaped).
# (st.characters' own surrogate category is merged away in a union of characters, hence chr.)
json_strings = st.text(st.characters(codec=None) | st.integers(0xD800, 0xDFFF).map(chr))
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
        "ref": st.none() | json_strings | json_values,
        "sent": st.integers() | json_values,
    },
)


def _replies(outcome: ClientFrame | FrameError) -> list[bytes]:
    """What a server encodes in answer: an error, a confirmation, or a message and its ack."""
    if isinstance(outcome, FrameError):
        return [error_frame(outcome.code, outcome.reason, outcome.ref)]
    if isinstance(outcome, Sub | Unsub):
        return [subscribed_frame(outcome.topic, outcome.since if isinstance(outcome, Sub) else None)]
    message = Message.create(outcome.topic, Uid("client"), outcome.body, datetime.now(UTC))
    return [message_frame(message), ack_frame(outcome.ref, message)]


@settings(max_examples=300)
@given(st.text() | st.binary() | (json_values | frame_like).map(json.dumps))
@example("NaN")
@example("1" * 5000)
def test_whatever_a_client_sends_is_a_frame_or_a_frame_error_the_server_can_answer(
    data: str | bytes,
) -> None:
    """Never another exception, and never a string that the reply cannot encode as UTF-8."""
    try:
        outcome: ClientFrame | FrameError = parse_client_frame(data)
    except FrameError as error:
        outcome = error
    if isinstance(outcome, FrameError):
        assert outcome.code in ERROR_CODES
        assert outcome.ref is None or len(outcome.ref) <= MAX_REF_LENGTH
    assert _replies(outcome)
