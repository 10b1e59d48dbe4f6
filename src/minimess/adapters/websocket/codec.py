"""The wire protocol v1 as pure functions: request paths, client frames in, server frames out."""

from __future__ import annotations

import json
import time
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
# Clients read JSON numbers as doubles: a larger `sent` would not come back exact.
MAX_SENT_US: Final = 2**53

STAMP_DIGITS: Final = 16
"""Width of a per-subscriber stamp: epoch microseconds have 16 digits until the year 2286."""
_UNSTAMPED: Final = b"0" * STAMP_DIGITS
_QUEUED_KEY: Final = b',"queued":'
_WRITTEN_KEY: Final = b',"written":'
_TRACE_END: Final = b"}}"
TRACE_TAIL: Final = _QUEUED_KEY + _UNSTAMPED + _WRITTEN_KEY + _UNSTAMPED + _TRACE_END
"""How every traced message frame ends before its subscriber's stamps are written in."""
# Offsets from the end of a traced frame: [-55:-45] queued key, [-45:-29] queued digits,
# [-29:-18] written key, [-18:-2] written digits, [-2:] the end of the trace and the message.
_TRACE_END_AT: Final = -len(_TRACE_END)
_WRITTEN_AT: Final = _TRACE_END_AT - STAMP_DIGITS
_WRITTEN_KEY_AT: Final = _WRITTEN_AT - len(_WRITTEN_KEY)
_QUEUED_AT: Final = _WRITTEN_KEY_AT - STAMP_DIGITS
_QUEUED_KEY_AT: Final = _QUEUED_AT - len(_QUEUED_KEY)


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
    # The client's send time in epoch microseconds, for --trace; read only by a tracing server.
    sent: int | None = None


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
    sent = document.get("sent")
    # bool is an int subclass, but `true` is no time.
    if sent is not None and (type(sent) is not int or not 0 <= sent < MAX_SENT_US):
        raise FrameError(
            "bad_frame", "'sent' must be an integer of microseconds since the epoch, below 2**53", ref
        )
    return Pub(topic, body, ref, sent)


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


def _message_document(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message.id,
        "topic": message.topic.name,
        "from": message.sender.value,
        "body": message.body,
        "ts": format_timestamp(message.timestamp),
    }


def message_frame(message: Message) -> bytes:
    return text_frame(_payload(_message_document(message)))


def now_us() -> int:
    """The time of a --trace stage: microseconds since the Unix epoch, by the wall clock.

    Wall clock, not monotonic, because stages are compared between processes on one machine.
    """
    return time.time_ns() // 1000


def traced_message_frame(message: Message) -> bytes:
    """A message frame with the message's stage times, and `delivered` read now.

    Rendering happens once per message, when the broker hands it to this server. The frame ends
    with TRACE_TAIL: `queued` and `written` differ per subscriber, so stamp_queued and
    stamp_written fill them into copies of these shared bytes at fixed width, which keeps the
    payload length, and so the WebSocket header, valid.
    """
    trace = message.trace
    document = _message_document(message)
    document["trace"] = {
        "sent": None if trace is None else trace.sent_us,
        "received": None if trace is None else trace.received_us,
        "delivered": now_us(),
    }
    return text_frame(_payload(document).removesuffix(_TRACE_END) + TRACE_TAIL)


def stamp_queued(frame: bytes, now_us: int) -> bytes:
    """`frame` with its `queued` placeholder set to `now_us`; any other frame unchanged."""
    if (
        frame.endswith(_TRACE_END)
        and frame[_QUEUED_KEY_AT:_QUEUED_AT] == _QUEUED_KEY
        and frame[_QUEUED_AT:_WRITTEN_KEY_AT] == _UNSTAMPED
        and frame[_WRITTEN_KEY_AT:_WRITTEN_AT] == _WRITTEN_KEY
    ):
        return frame[:_QUEUED_AT] + _stamp(now_us) + frame[_WRITTEN_KEY_AT:]
    return frame


def stamp_written(frame: bytes, now_us: int) -> bytes:
    """`frame` with its `written` placeholder set to `now_us`; any other frame unchanged."""
    if (
        frame.endswith(_TRACE_END)
        and frame[_WRITTEN_AT:_TRACE_END_AT] == _UNSTAMPED
        and frame[_WRITTEN_KEY_AT:_WRITTEN_AT] == _WRITTEN_KEY
        and frame[_QUEUED_KEY_AT:_QUEUED_AT] == _QUEUED_KEY
    ):
        return frame[:_WRITTEN_AT] + _stamp(now_us) + _TRACE_END
    return frame


def _stamp(now_us: int) -> bytes:
    stamp = b"%016d" % now_us
    if len(stamp) != STAMP_DIGITS or now_us < 0:
        raise ValueError(f"a stamp must be 0 <= t < 10**{STAMP_DIGITS}, got {now_us}")
    return stamp


def subscribed_frame(topic: Topic) -> bytes:
    return text_frame(_payload({"type": "subscribed", "topic": topic.name}))


def unsubscribed_frame(topic: Topic) -> bytes:
    return text_frame(_payload({"type": "unsubscribed", "topic": topic.name}))


def ack_frame(ref: str | None, message_id: str, trace: tuple[int, int] | None = None) -> bytes:
    """An ack; with --trace, `trace` is when the server read the pub and when the broker accepted it."""
    document: dict[str, Any] = {"type": "ack", "ref": ref, "id": message_id}
    if trace is not None:
        received, accepted = trace
        document["trace"] = {"received": received, "accepted": accepted}
    return text_frame(_payload(document))


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
        if frame.sent is not None:
            document["sent"] = frame.sent
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
