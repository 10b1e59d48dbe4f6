"""The wire protocol v1 as pure functions: request paths, client frames in, server frames out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

import attrs
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from minimess.domain.errors import InvalidName
from minimess.domain.model import Message, Topic, Uid

SUBSCRIBE_PREFIX: Final = "/subscribe/"
MAX_REF_LENGTH: Final = 128


class FrameError(Exception):
    """A client frame the server cannot act on; becomes an `error` frame, the connection stays."""

    def __init__(self, code: str, reason: str, ref: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.ref = ref


class PathError(Exception):
    """A request path that gets an HTTP error instead of a WebSocket upgrade."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@attrs.frozen
class SubscribeRequest:
    """The identity and first topics a client asked for in its URL."""

    uid: Uid
    topics: tuple[Topic, ...]


@attrs.frozen
class Sub:
    topic: Topic
    ref: str | None = None


@attrs.frozen
class Unsub:
    topic: Topic
    ref: str | None = None


@attrs.frozen
class Pub:
    topic: Topic
    body: str
    ref: str | None = None


ClientFrame = Sub | Unsub | Pub


def parse_subscribe_path(path: str, max_topics: int) -> SubscribeRequest:
    """Parse `/subscribe/id:<uid>[/topic:<topic>...]`; raise PathError (404 or 400) otherwise."""
    path = path.partition("?")[0]
    if not path.startswith(SUBSCRIBE_PREFIX):
        raise PathError(404, f"no such endpoint {path!r}")
    # Split before unquoting, so that an escaped "/" stays inside its segment (and is rejected).
    segments = [unquote(segment) for segment in path[len(SUBSCRIBE_PREFIX) :].removesuffix("/").split("/")]
    usage = "expected /subscribe/id:<uid>[/topic:<topic>...]"
    if not segments[0].startswith("id:"):
        raise PathError(400, usage)
    topics: dict[Topic, None] = {}
    try:
        uid = Uid(segments[0].removeprefix("id:"))
        for segment in segments[1:]:
            if not segment.startswith("topic:"):
                raise PathError(400, f"unexpected segment {segment!r}: {usage}")
            topics[Topic(segment.removeprefix("topic:"))] = None
    except InvalidName as error:
        raise PathError(400, str(error)) from None
    if len(topics) > max_topics:
        raise PathError(400, f"a connection may hold at most {max_topics} topics")
    return SubscribeRequest(uid=uid, topics=tuple(topics))


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one client frame; raise FrameError, and nothing else, when it is not valid v1."""
    if not isinstance(data, str):
        raise FrameError("bad_frame", "binary frames are not supported; send JSON text frames")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise FrameError("bad_frame", "frame is not valid JSON") from None
    if not isinstance(document, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    ref = document.get("ref")
    if ref is not None and (
        not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH or not _is_unicode_text(ref)
    ):
        raise FrameError("bad_frame", f"'ref' must be a string of at most {MAX_REF_LENGTH} characters")
    kind = document.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_frame", "missing string field 'type'", ref)
    if kind not in ("sub", "unsub", "pub"):
        raise FrameError("unknown_type", f"unknown frame type {kind!r}; expected sub, unsub or pub", ref)
    topic = _topic_field(document, ref)
    if kind == "sub":
        return Sub(topic, ref)
    if kind == "unsub":
        return Unsub(topic, ref)
    body = document.get("body")
    if not isinstance(body, str):
        raise FrameError("bad_frame", "missing string field 'body'", ref)
    if not _is_unicode_text(body):
        raise FrameError("bad_frame", "'body' contains an unpaired surrogate escape", ref)
    return Pub(topic, body, ref)


def _is_unicode_text(text: str) -> bool:
    """False for strings with lone surrogates, which JSON escapes allow but UTF-8 cannot carry."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _topic_field(document: dict[str, Any], ref: str | None) -> Topic:
    name = document.get("topic")
    if not isinstance(name, str):
        raise FrameError("bad_frame", "missing string field 'topic'", ref)
    try:
        return Topic(name)
    except InvalidName as error:
        raise FrameError("bad_topic", str(error), ref) from None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-28T03:55:13.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def _payload(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def text_frame(payload: bytes) -> bytes:
    """A whole unmasked WebSocket text frame: what a server writes, the same for every client."""
    return WireFrame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def success_frame(uid: Uid, node: str, topics: tuple[Topic, ...]) -> bytes:
    return text_frame(
        _payload({"type": "success", "uid": uid.value, "node": node, "topics": [t.name for t in topics]})
    )


def time_frame(now: datetime) -> bytes:
    return text_frame(_payload({"type": "time", "ts": format_timestamp(now)}))


def message_frame(message: Message) -> bytes:
    return text_frame(
        _payload(
            {
                "type": "message",
                "id": message.id,
                "topic": message.topic.name,
                "from": message.sender.value,
                "body": message.body,
                "ts": format_timestamp(message.timestamp),
            }
        )
    )


def subscribed_frame(topic: Topic) -> bytes:
    return text_frame(_payload({"type": "subscribed", "topic": topic.name}))


def unsubscribed_frame(topic: Topic) -> bytes:
    return text_frame(_payload({"type": "unsubscribed", "topic": topic.name}))


def ack_frame(ref: str | None, message_id: str) -> bytes:
    return text_frame(_payload({"type": "ack", "ref": ref, "id": message_id}))


def error_frame(code: str, reason: str, ref: str | None = None) -> bytes:
    return text_frame(_payload({"type": "error", "code": code, "reason": reason, "ref": ref}))


def client_frame_text(frame: ClientFrame) -> str:
    """Encode a client frame, as a client sends it."""
    document: dict[str, Any] = {"topic": frame.topic.name}
    if isinstance(frame, Sub):
        document["type"] = "sub"
    elif isinstance(frame, Unsub):
        document["type"] = "unsub"
    else:
        document["type"] = "pub"
        document["body"] = frame.body
    if frame.ref is not None:
        document["ref"] = frame.ref
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def parse_timestamp(text: str) -> datetime:
    """Inverse of format_timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def message_from_document(document: dict[str, Any]) -> Message:
    """Read a decoded `message` frame back into a Message (what a client does)."""
    return Message(
        id=document["id"],
        topic=Topic(document["topic"]),
        sender=Uid(document["from"]),
        body=document["body"],
        timestamp=parse_timestamp(document["ts"]),
    )


def subscribe_path(uid: Uid, topics: tuple[Topic, ...]) -> str:
    """The request path that connects as `uid` subscribed to `topics` (inverse of parse_subscribe_path)."""
    return f"{SUBSCRIBE_PREFIX}id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)
