"""Frames a server sends, encoded once as whole WebSocket frames, and the client's reading of `message`."""

from __future__ import annotations

import json
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from minimess.adapters.wire.timestamps import format_timestamp, parse_timestamp
from minimess.domain.model import Message, Position, Topic, Uid

# Made once: json.dumps with any option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def payload(document: dict[str, Any]) -> bytes:
    """A frame's JSON text: compact, and UTF-8 as it is rather than \\u escapes."""
    return _ENCODER.encode(document).encode()


def text_header(size: int) -> bytes:
    """The header of a whole unmasked text frame of `size` bytes (RFC 6455 5.2): FIN and the text
    opcode, then the length in 7, 16 or 64 bits."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


def text_frame(payload: bytes) -> bytes:
    """A whole unmasked WebSocket text frame: what a server writes, the same for every client.

    Its header is text_header's, written here rather than by websockets' Frame.serialize, which
    costs ten times as much for the same bytes
    (tests/unit/test_server_frames.py compares the two): a Kafka server encodes a frame for
    nearly every record it reads.
    """
    return text_header(len(payload)) + payload


def success_frame(uid: Uid, node: str, topics: tuple[Topic, ...], max_message_bytes: int) -> bytes:
    """The first frame of a connection; `max_message_bytes` tells the client how large a frame it may send."""
    return text_frame(
        payload(
            {
                "type": "success",
                "uid": uid.value,
                "node": node,
                "topics": [t.name for t in topics],
                "max_message_bytes": max_message_bytes,
            }
        )
    )


def time_frame(now: datetime) -> bytes:
    return text_frame(payload({"type": "time", "ts": format_timestamp(now)}))


def message_document(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message.id,
        "topic": message.topic.name,
        "from": message.sender.value,
        "body": message.body,
        "ts": format_timestamp(message.timestamp),
        **_position_fields(message.position),
    }


def _position_fields(position: Position | None) -> dict[str, Any]:
    if position is None:
        return {"offset": None, "epoch": None}
    return {"offset": position.offset, "epoch": position.epoch}


def message_frame(message: Message) -> bytes:
    """The bytes of `payload(message_document(message))` in its frame, put together directly.

    Made once per message a server receives, so assembled from its strings rather than through a
    dict and the encoder; encode_basestring is the encoder's own C escaping of a string (UTF-8
    kept, as with ensure_ascii=False). tests/unit/test_server_frames.py holds the two equal.
    """
    text = (
        f'{{"type":"message","id":{encode_basestring(message.id)},'
        f'"topic":{encode_basestring(message.topic.name)},"from":{encode_basestring(message.sender.value)},'
        f'"body":{encode_basestring(message.body)},"ts":"{format_timestamp(message.timestamp)}",'
        f"{_position_text(message.position)}}}"
    )
    return text_frame(text.encode())


def _position_text(position: Position | None) -> str:
    """`_position_fields(position)` as the encoder writes them inside an object."""
    if position is None:
        return '"offset":null,"epoch":null'
    return f'"offset":{position.offset:d},"epoch":{encode_basestring(position.epoch)}'


def subscribed_frame(topic: Topic, position: Position | None, recovered: bool | None = None) -> bytes:
    """`subscribed` with the position the subscriber starts from; `recovered` when it asked to."""
    document: dict[str, Any] = {"type": "subscribed", "topic": topic.name, **_position_fields(position)}
    if recovered is not None:
        document["recovered"] = recovered
    return text_frame(payload(document))


def unsubscribed_frame(topic: Topic) -> bytes:
    return text_frame(payload({"type": "unsubscribed", "topic": topic.name}))


def ack_document(ref: str | None, message: Message) -> dict[str, Any]:
    return {"type": "ack", "ref": ref, "id": message.id, **_position_fields(message.position)}


def ack_frame(ref: str | None, message: Message) -> bytes:
    """The bytes of `payload(ack_document(ref, message))` in its frame, put together directly:
    one for every publish (as message_frame, held equal by the tests)."""
    quoted_ref = "null" if ref is None else encode_basestring(ref)
    text = (
        f'{{"type":"ack","ref":{quoted_ref},"id":{encode_basestring(message.id)},'
        f"{_position_text(message.position)}}}"
    )
    return text_frame(text.encode())


def error_frame(code: str, reason: str, ref: str | None = None) -> bytes:
    return text_frame(payload({"type": "error", "code": code, "reason": reason, "ref": ref}))


def message_from_document(document: dict[str, Any]) -> Message:
    """Read a decoded `message` frame back into a Message (what a client does)."""
    return Message(
        id=document["id"],
        topic=Topic(document["topic"]),
        sender=Uid(document["from"]),
        body=document["body"],
        timestamp=parse_timestamp(document["ts"]),
        position=position_from_document(document),
    )


def position_from_document(document: dict[str, Any]) -> Position | None:
    """The `epoch` and `offset` of a server frame, or None when it has none."""
    epoch, offset = document.get("epoch"), document.get("offset")
    if not isinstance(epoch, str) or type(offset) is not int:
        return None
    return Position(epoch, offset)


class FrameRenderer:
    """The Renderer port: what the core sends to every subscriber, as protocol v1 frames."""

    message = staticmethod(message_frame)
    time = staticmethod(time_frame)
