"""The bench's clients: every document of a frame, whether it came alone or packed with others."""

from __future__ import annotations

import json

from minimess.bench.frames import documents


def _text(document: dict[str, str]) -> str:
    return json.dumps(document, ensure_ascii=False)


def test_a_frame_holds_one_document() -> None:
    message = {"type": "message", "topic": "t", "body": "1 hello\nthere"}
    assert documents(_text(message)) == [message]
    assert documents(_text(message).encode()) == [message]


def test_every_line_of_a_packed_frame_is_a_document() -> None:
    first = {"type": "message", "topic": "t", "body": "1 one\u2028line"}
    ack = {"type": "ack", "ref": "r"}
    second = {"type": "message", "topic": "u", "body": "2 two"}
    packed = "\n".join([_text(first), _text(ack), _text(second)])
    assert documents(packed) == [first, ack, second]
