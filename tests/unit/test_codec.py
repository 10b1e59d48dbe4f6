"""The wire protocol v1 codec: client frames in, server frames out, timestamps and request paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from minimess.adapters.websocket.codec import (
    MAX_REF_LENGTH,
    MAX_SENT_US,
    ClientFrame,
    FrameError,
    PathError,
    Pub,
    Sub,
    SubscribeRequest,
    Unsub,
    ack_frame,
    client_frame_text,
    error_frame,
    format_timestamp,
    message_frame,
    message_from_document,
    parse_client_frame,
    parse_subscribe_path,
    parse_timestamp,
    subscribed_frame,
    success_frame,
    time_frame,
    unsubscribed_frame,
)
from minimess.domain.model import Message, Topic, Uid
from tests.unit.wire import decode_server_frame, replies_to

NEWS = Topic("news")
NOW = datetime(2026, 11, 28, 3, 55, 13, 123456, tzinfo=UTC)
NOW_AT_MS = NOW.replace(microsecond=123000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"sub","topic":"news"}', Sub(NEWS)),
        ('{"type":"sub","topic":"news","ref":"c-1"}', Sub(NEWS, "c-1")),
        ('{"type":"unsub","topic":"news"}', Unsub(NEWS)),
        ('{"type":"unsub","topic":"news","ref":"c-2"}', Unsub(NEWS, "c-2")),
        ('{"type":"pub","topic":"news","body":"hi"}', Pub(NEWS, "hi")),
        ('{"type":"pub","topic":"news","body":"hi","ref":"c-3"}', Pub(NEWS, "hi", "c-3")),
        ('{"ref":null,"body":"","topic":"a:b","type":"pub"}', Pub(Topic("a:b"), "")),
        ('{"type":"sub","topic":"news","extra":[1,2]}', Sub(NEWS)),
        ('  {"type":"sub","topic":"news"}\n', Sub(NEWS)),
        ('{"type":"pub","topic":"news","body":"h\\u00e9 \\ud83d\\ude80"}', Pub(NEWS, "hé 🚀")),
        ('{"type":"sub","topic":"news","ref":""}', Sub(NEWS, "")),
        (
            json.dumps({"type": "sub", "topic": "news", "ref": "r" * MAX_REF_LENGTH}),
            Sub(NEWS, "r" * MAX_REF_LENGTH),
        ),
    ],
)
def test_parse_client_frame_reads_valid_frames(text: str, expected: ClientFrame) -> None:
    """sub, unsub and pub frames, with or without ref, become Sub, Unsub and Pub values."""
    assert parse_client_frame(text) == expected


@pytest.mark.parametrize(
    ("text", "code", "ref"),
    [
        ("", "bad_frame", None),
        ("not json", "bad_frame", None),
        ('{"type":"sub","topic":"news"', "bad_frame", None),
        ("null", "bad_frame", None),
        ("42", "bad_frame", None),
        ('"sub"', "bad_frame", None),
        ('[{"type":"sub","topic":"news"}]', "bad_frame", None),
        ("{}", "bad_frame", None),
        ('{"topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":null,"topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":7,"topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"hello","topic":"news","ref":"r1"}', "unknown_type", "r1"),
        ('{"type":"SUB","topic":"news"}', "unknown_type", None),
        ('{"type":"message","topic":"news"}', "unknown_type", None),
        ('{"type":"sub","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"unsub","topic":5,"ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":["news"],"body":"hi","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"sub","topic":"","ref":"r1"}', "bad_topic", "r1"),
        ('{"type":"sub","topic":"bad topic","ref":"r1"}', "bad_topic", "r1"),
        ('{"type":"unsub","topic":"a/b"}', "bad_topic", None),
        (json.dumps({"type": "pub", "topic": "t" * 129, "body": "hi", "ref": "r1"}), "bad_topic", "r1"),
        ('{"type":"pub","topic":"news","ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":"news","body":null,"ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"pub","topic":"news","body":{"text":"hi"},"ref":"r1"}', "bad_frame", "r1"),
        ('{"type":"sub","topic":"news","ref":5}', "bad_frame", None),
        ('{"type":"sub","topic":"news","ref":["r1"]}', "bad_frame", None),
        (json.dumps({"type": "sub", "topic": "news", "ref": "r" * (MAX_REF_LENGTH + 1)}), "bad_frame", None),
        ('{"type":"pub","topic":"bad topic","ref":"r1"}', "bad_topic", "r1"),
    ],
)
def test_parse_client_frame_rejects_invalid_frames_with_the_right_code(
    text: str, code: str, ref: str | None
) -> None:
    """Every invalid frame raises FrameError with its code, echoing ref only when it is a valid string."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text)
    assert (caught.value.code, caught.value.ref) == (code, ref)
    assert caught.value.reason


@pytest.mark.parametrize("data", [b'{"type":"sub","topic":"news"}', b"", b"\xff\xfe"])
def test_parse_client_frame_rejects_binary_frames(data: bytes) -> None:
    """A binary frame is a bad_frame, even when its bytes are valid JSON."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(data)
    assert caught.value.code == "bad_frame"


@pytest.mark.parametrize("opening", ["[", '{"a":', '{"type":"pub","topic":"news","body":['])
def test_deeply_nested_json_is_a_bad_frame_not_a_recursion_error(opening: str) -> None:
    """100,000 levels of nesting within the size limit are a bad_frame, not a crash of the reader."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(opening * 100_000)
    assert caught.value.code == "bad_frame"


@pytest.mark.parametrize(
    "document",
    [
        {"type": "pub", "topic": "news", "body": "\ud800", "ref": "c-1"},
        {"type": "pub", "topic": "news", "body": "hi", "ref": "\udc00"},
        {"type": "sub", "topic": "news", "ref": "\ud800"},
        {"type": "sub", "topic": "bad topic", "ref": "\ud800"},
        {"type": "nope", "topic": "news", "ref": "\ud800"},
    ],
    ids=["pub-body", "pub-ref", "sub-ref", "bad-topic-ref", "unknown-type-ref"],
)
def test_a_frame_with_an_escaped_lone_surrogate_can_be_answered(document: dict[str, str]) -> None:
    """A frame with an escaped lone surrogate (\\ud800) in a string is rejected or answered, never a crash."""
    # UTF-8 cannot encode a lone surrogate: accepting one and echoing it into a message, ack or
    # error frame raises UnicodeEncodeError, so the message is lost or the connection closes 1011.
    text = json.dumps(document)  # ensure_ascii: the frame itself is valid UTF-8
    replies = replies_to(text)
    assert replies
    if replies[0]["type"] == "error":
        assert replies[0]["code"] in ("bad_frame", "bad_topic", "unknown_type")


@pytest.mark.parametrize(
    "frame",
    [
        Sub(NEWS),
        Sub(Topic("afrozalm:mala:zorfa"), "c-1"),
        Unsub(NEWS),
        Unsub(NEWS, "r" * MAX_REF_LENGTH),
        Pub(NEWS, "hi"),
        Pub(NEWS, "", ""),
        Pub(NEWS, 'quotes " and \\ backslashes\nand\ttabs', "c-2"),
        Pub(NEWS, "héllo wörld 🚀 \u2028 \x00", "réf"),
        Pub(NEWS, "hi", "c-3", sent=1_764_300_000_123_456),
        Pub(NEWS, "hi", sent=0),
    ],
)
def test_client_frame_text_then_parse_is_identity(frame: ClientFrame) -> None:
    """Encoding a client frame as a client does and parsing it back gives the same frame."""
    assert parse_client_frame(client_frame_text(frame)) == frame


@pytest.mark.parametrize("sent", [0, 1, 1_764_300_000_123_456, MAX_SENT_US - 1])
def test_a_pub_may_say_when_it_was_sent(sent: int) -> None:
    """An integer `sent` from 0 to 2**53 - 1 microseconds is read into the Pub."""
    text = json.dumps({"type": "pub", "topic": "news", "body": "hi", "ref": "c-1", "sent": sent})
    assert parse_client_frame(text) == Pub(NEWS, "hi", "c-1", sent=sent)


def test_a_pub_without_sent_or_with_null_sent_has_none() -> None:
    """`sent` is optional: absent or null, the Pub carries None."""
    assert parse_client_frame('{"type":"pub","topic":"news","body":"hi"}') == Pub(NEWS, "hi", sent=None)
    assert parse_client_frame('{"type":"pub","topic":"news","body":"hi","sent":null}') == Pub(NEWS, "hi")


@pytest.mark.parametrize(
    "sent",
    ["true", "false", "-1", str(MAX_SENT_US), "1e15", "1764300000123456.5", '"1764300000123456"', "[1]"],
    ids=["true", "false", "negative", "2**53", "exponent", "fraction", "string", "list"],
)
def test_a_sent_that_is_not_a_small_enough_natural_number_is_a_bad_frame(sent: str) -> None:
    """A `sent` that is a bool, negative, 2**53 or more, not an integer, or a string: bad_frame with ref."""
    text = f'{{"type":"pub","topic":"news","body":"hi","ref":"c-1","sent":{sent}}}'
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text)
    assert (caught.value.code, caught.value.ref) == ("bad_frame", "c-1")
    assert "'sent'" in caught.value.reason


def _message(body: str = "hi", moment: datetime = NOW) -> Message:
    return Message.create(Topic("afrozalm:mala:zorfa"), Uid("alice"), body, moment)


@pytest.mark.parametrize(
    "body",
    ["hi", "", "héllo 🚀", 'a "quoted" \\ body\n', "x" * 100, "x" * 200, "x" * 70_000],
    ids=["ascii", "empty", "unicode", "escapes", "7-bit-length", "16-bit-length", "64-bit-length"],
)
def test_message_frame_round_trips_through_the_wire(body: str) -> None:
    """A message frame parsed as a client parses it gives back the message, at millisecond precision."""
    message = _message(body)
    document = decode_server_frame(message_frame(message))
    assert document["type"] == "message"
    assert message_from_document(document) == Message(
        id=message.id, topic=message.topic, sender=message.sender, body=body, timestamp=NOW_AT_MS
    )


def test_message_frame_has_the_documented_fields() -> None:
    """A message frame carries exactly type, id, topic, from, body and ts."""
    message = _message()
    assert decode_server_frame(message_frame(message)) == {
        "type": "message",
        "id": message.id,
        "topic": "afrozalm:mala:zorfa",
        "from": "alice",
        "body": "hi",
        "ts": "2026-11-28T03:55:13.123Z",
    }


def test_message_frame_is_the_same_bytes_every_time() -> None:
    """Encoding is deterministic, so one encoding can serve every subscriber."""
    message = _message()
    assert message_frame(message) == message_frame(message)


@pytest.mark.parametrize(
    ("data", "document"),
    [
        (
            success_frame(Uid("bob"), "node-1", (NEWS, Topic("a:b"))),
            {"type": "success", "uid": "bob", "node": "node-1", "topics": ["news", "a:b"]},
        ),
        (
            success_frame(Uid("bob"), "node-1", ()),
            {"type": "success", "uid": "bob", "node": "node-1", "topics": []},
        ),
        (time_frame(NOW), {"type": "time", "ts": "2026-11-28T03:55:13.123Z"}),
        (subscribed_frame(NEWS), {"type": "subscribed", "topic": "news"}),
        (unsubscribed_frame(NEWS), {"type": "unsubscribed", "topic": "news"}),
        (ack_frame("c-1", "m-1"), {"type": "ack", "ref": "c-1", "id": "m-1"}),
        (ack_frame(None, "m-1"), {"type": "ack", "ref": None, "id": "m-1"}),
        (
            ack_frame("c-1", "m-1", (1_764_300_000_000_001, 1_764_300_000_000_002)),
            {
                "type": "ack",
                "ref": "c-1",
                "id": "m-1",
                "trace": {"received": 1_764_300_000_000_001, "accepted": 1_764_300_000_000_002},
            },
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
        "success-no-topics",
        "time",
        "subscribed",
        "unsubscribed",
        "ack",
        "ack-no-ref",
        "ack-traced",
        "error",
        "error-no-ref",
    ],
)
def test_server_frames_match_the_protocol(data: bytes, document: dict[str, object]) -> None:
    """Every server frame is one unmasked text frame holding the documented JSON object."""
    assert decode_server_frame(data) == document


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (NOW, "2026-11-28T03:55:13.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC), "2026-01-01T00:00:00.000Z"),
    ],
)
def test_format_timestamp_is_rfc3339_utc_with_milliseconds(moment: datetime, text: str) -> None:
    """Timestamps are written with milliseconds (truncated, never rounded up) and a Z."""
    assert format_timestamp(moment) == text


@pytest.mark.parametrize(
    "moment",
    [
        NOW,
        NOW_AT_MS,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_parse_timestamp_inverts_format_timestamp_at_millisecond_precision(moment: datetime) -> None:
    """Formatting then parsing gives the same UTC instant, truncated to the millisecond."""
    parsed = parse_timestamp(format_timestamp(moment))
    assert parsed == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset() == NOW.utcoffset()


@pytest.mark.parametrize(
    ("path", "uid", "topics"),
    [
        ("/subscribe/id:bob", "bob", ()),
        ("/subscribe/id:bob/", "bob", ()),
        ("/subscribe/id:bob/topic:news", "bob", ("news",)),
        ("/subscribe/id:bob/topic:news/", "bob", ("news",)),
        (
            "/subscribe/id:bob/topic:news/topic:afrozalm:mala:zorfa/topic:a.b_c-d",
            "bob",
            ("news", "afrozalm:mala:zorfa", "a.b_c-d"),
        ),
        ("/subscribe/id:bob/topic:news?since=1&x=/y", "bob", ("news",)),
        ("/subscribe/id:bob/topic:news/?x=1", "bob", ("news",)),
        ("/subscribe/id:bob?x", "bob", ()),
        ("/subscribe/id:bob/topic:b/topic:a/topic:b", "bob", ("b", "a")),
        (f"/subscribe/id:{'u' * 64}/topic:{'t' * 128}", "u" * 64, ("t" * 128,)),
    ],
)
def test_parse_subscribe_path_reads_uid_and_topics(path: str, uid: str, topics: tuple[str, ...]) -> None:
    """A subscribe path gives its uid and its distinct topics in order; the query string is ignored."""
    assert parse_subscribe_path(path, max_topics=3) == SubscribeRequest(
        uid=Uid(uid), topics=tuple(Topic(t) for t in topics)
    )


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/", 404, "no such endpoint"),
        ("", 404, "no such endpoint"),
        ("/subscribe", 404, "no such endpoint"),
        ("/subscribe?id:bob", 404, "no such endpoint"),
        ("/sub/id:bob", 404, "no such endpoint"),
        ("/SUBSCRIBE/id:bob", 404, "no such endpoint"),
        ("/api/subscribe/id:bob", 404, "no such endpoint"),
        ("/subscribe/", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/bob", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/topic:news/id:bob", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/id:", 400, "invalid uid"),
        ("/subscribe/id:bob:smith", 400, "invalid uid"),
        (f"/subscribe/id:{'u' * 65}", 400, "invalid uid"),
        ("/subscribe/id:bob/news", 400, "unexpected segment 'news'"),
        ("/subscribe/id:bob//topic:news", 400, "unexpected segment ''"),
        ("/subscribe/id:bob/topic:news//", 400, "unexpected segment ''"),
        ("/subscribe/id:bob/topic:", 400, "invalid topic"),
        ("/subscribe/id:bob/topic:a%20b", 400, "invalid topic"),
        (f"/subscribe/id:bob/topic:{'t' * 129}", 400, "invalid topic"),
        ("/subscribe/id:bob/topic:a/topic:b/topic:c/topic:d", 400, "at most 3 topics"),
    ],
)
def test_parse_subscribe_path_rejects_bad_paths_with_status_and_reason(
    path: str, status: int, reason: str
) -> None:
    """Another endpoint is a 404; a malformed subscribe path is a 400 saying what is wrong."""
    with pytest.raises(PathError) as caught:
        parse_subscribe_path(path, max_topics=3)
    assert caught.value.status == status
    assert reason in caught.value.reason
    assert "\n" not in caught.value.reason
