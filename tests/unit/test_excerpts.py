"""Error reasons echo at most a short, escaped excerpt of what the client sent."""

from __future__ import annotations

import json

import pytest

from minimess.adapters.wire.client_frames import FrameError, parse_client_frame
from minimess.adapters.wire.paths import PathError, parse_subscribe_path
from minimess.adapters.wire.server_frames import error_frame
from minimess.domain.excerpts import EXCERPT_CHARACTERS, excerpt

# Each a character a terminal or a log viewer would act on rather than show.
UNSAFE = "\x00\x07\x1b[31m\r\n\x7f\u0085\u200b\u202e\u2066\ufeff\udc80"


def test_a_short_value_is_quoted_whole() -> None:
    assert excerpt("news!") == "'news!'"


def test_control_format_and_unpaired_characters_come_out_escaped() -> None:
    shown = excerpt(UNSAFE)
    assert shown == r"'\x00\x07\x1b[31m\r\n\x7f\x85\u200b\u202e\u2066\ufeff\udc80'"
    assert shown.isprintable()
    assert shown.isascii()


def test_a_long_value_is_cut_to_an_excerpt_with_its_length() -> None:
    assert excerpt("a" * 60_000) == "'" + "a" * EXCERPT_CHARACTERS + "'… (60,000 characters)"


def test_a_long_value_of_escapes_stays_short() -> None:
    """Escaping multiplies the size by up to ten: cut first, then escape."""
    assert len(excerpt("\U000e0001" * 60_000)) < 400


def test_a_value_that_is_no_string_is_cut_too() -> None:
    assert excerpt(12) == "12"
    assert excerpt(list(range(10_000))) == repr(list(range(10_000)))[:EXCERPT_CHARACTERS] + "…"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "sub", "topic": "x/" * 30_000},
        {"type": "pub", "topic": "\x1b" * 60_000, "body": "hi"},
        {"type": "\x00" * 60_000, "topic": "news"},
        {"type": "pub", "topic": "news", "body": "hi", "id": "\u202e" * 60_000},
        {"type": "sub", "topic": "news", "since": {"epoch": "\x07" * 60_000, "offset": 1}},
    ],
    ids=["topic", "topic of escapes", "type", "id", "epoch"],
)
def test_a_60_kb_bad_field_gives_an_error_frame_of_a_few_hundred_bytes_at_most(
    frame: dict[str, object],
) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps(frame))
    error = caught.value
    reply = error_frame(error.code, error.reason, error.ref)
    assert len(reply) < 400, reply
    assert error.reason.isprintable()
    assert "60,000 characters" in error.reason


@pytest.mark.parametrize(
    "path",
    [
        "/" + "\x1b" * 60_000,
        "/subscribe/id:" + "b" * 60_000,
        "/subscribe/id:bob/" + "\x00" * 60_000,
        "/subscribe/id:bob/topic:" + "%1b" * 20_000,
        "/subscribe/id:bob/topic:news@" + "e" * 60_000,
        "/subscribe/id:bob/topic:news@" + "\u202e" * 60_000 + ":1",
    ],
    ids=["endpoint", "uid", "segment", "topic", "position", "epoch"],
)
def test_a_bad_request_path_gets_a_short_printable_reason(path: str) -> None:
    with pytest.raises(PathError) as caught:
        parse_subscribe_path(path, max_topics=3)
    assert len(caught.value.reason) < 300, caught.value.reason
    assert caught.value.reason.isprintable()
