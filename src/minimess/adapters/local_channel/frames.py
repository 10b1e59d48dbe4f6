"""The local channel's frames (a length, a kind byte, JSON): encoding, and decoding that refuses garbage.

Pure: no event loop. Both ends (the sequencer and each worker's broker) read frames with
`read_frame` and decode payloads with the `decode_*` functions, which raise `BadFrame` on
anything they cannot trust, so that one bad frame is skipped rather than crashing a process.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from typing import Any

from minimess.domain.errors import InvalidName
from minimess.domain.model import Message, Position, Topic, Uid, check_message_id

# A frame's length: 4 bytes, big-endian, the kind byte and the payload.
HEADER = struct.Struct(">I")
# The largest frame either end accepts; past it the stream itself cannot be trusted (a message
# frame of the largest message a server accepts is far smaller: --max-message-bytes' bound).
MAX_FRAME = 16 * 2**20

# Worker to sequencer: a message to number and send to every worker, with the request's id.
PUBLISH = b"P"
# Sequencer to worker, first: the epoch of the channel's logs.
WELCOME = b"W"
# Sequencer to worker: the offset from which this worker receives a topic's log.
START = b"S"
# Sequencer to worker: a numbered message, in the topic's order.
MESSAGE = b"M"
# Sequencer to worker: the publish request of that id is numbered, at that offset.
ACK = b"A"


class BadFrame(ValueError):
    """A frame whose kind or payload cannot be trusted: skipped by whoever reads it."""


class BrokenStream(ValueError):
    """A length outside the bounds: nothing after it can be framed, so the stream is closed."""


def frame(kind: bytes, payload: dict[str, Any]) -> bytes:
    """One frame of `kind` carrying `payload`."""
    body = kind + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """The length a frame's header announces; BrokenStream if it is out of bounds."""
    length: int = HEADER.unpack(header)[0]
    if not 1 <= length <= MAX_FRAME:
        raise BrokenStream(f"frame length {length} outside 1..{MAX_FRAME}")
    return length


def split(body: bytes) -> tuple[bytes, dict[str, Any]]:
    """A frame's kind and its payload (a JSON object); BadFrame otherwise."""
    try:
        payload = json.loads(body[1:])
    except (ValueError, UnicodeDecodeError) as error:
        raise BadFrame(f"payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise BadFrame("payload is not an object")
    return body[:1], payload


def message_payload(message: Message) -> dict[str, Any]:
    """What a message frame carries of `message` (its offset, when it has one)."""
    return {
        "id": message.id,
        "topic": message.topic.name,
        "sender": message.sender.value,
        "body": message.body,
        "ms": round(message.timestamp.timestamp() * 1000),
        "headers": dict(message.headers),
        "offset": message.offset,
    }


def decode_message(payload: dict[str, Any], epoch: str) -> Message:
    """The message a frame carries, positioned in `epoch` at its offset; BadFrame unless all is sound."""
    try:
        headers = payload["headers"]
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise BadFrame("headers are not strings")
        offset, ms = field(payload, "offset", int), field(payload, "ms", int)
        body, message_id = field(payload, "body", str), check_message_id(field(payload, "id", str))
        message = Message(
            id=message_id,
            topic=Topic(payload["topic"]),
            sender=Uid(payload["sender"]),
            body=body,
            timestamp=datetime.fromtimestamp(ms / 1000, UTC),
            headers=headers,
        )
        return message.at(Position(epoch, offset)) if offset >= 0 else message
    except BadFrame:
        raise
    except (KeyError, InvalidName, ValueError, OverflowError, OSError) as error:
        # A timestamp out of range is an OverflowError or OSError, a bad name an InvalidName.
        raise BadFrame(f"unsound message: {error!r}"[:200]) from None


def field(payload: dict[str, Any], name: str, kind: type) -> Any:
    """`payload[name]` if it is a `kind`; BadFrame otherwise (a bool is no int)."""
    value = payload.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadFrame(f"{name} is not a {kind.__name__}")
    return value
