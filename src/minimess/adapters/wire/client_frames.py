"""Frames a client sends (`sub`, `unsub`, `pub`): the server's strict parser and the client's encoder."""

from __future__ import annotations

import json
from typing import Any, Final

import attrs

from minimess.domain.errors import InvalidName
from minimess.domain.excerpts import excerpt
from minimess.domain.model import MAX_OFFSET, Position, Topic, check_message_id

MAX_REF_LENGTH: Final = 128
# Clients read JSON numbers as doubles: a larger `sent` would not come back exact.
MAX_SENT_US: Final = 2**53


class FrameError(Exception):
    """A client frame the server cannot act on; becomes an `error` frame, the connection stays."""

    def __init__(self, code: str, reason: str, ref: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.ref = ref


@attrs.frozen
class Sub:
    topic: Topic
    ref: str | None = None
    # The last position the client has of the topic: recover what came after it.
    since: Position | None = None


@attrs.frozen
class Unsub:
    topic: Topic
    ref: str | None = None


@attrs.frozen
class Pub:
    topic: Topic
    body: str
    ref: str | None = None
    # The client's send time in epoch microseconds; only a server started with --trace reads it.
    sent: int | None = None
    # The client's id for the message, which makes publishing it again safe.
    id: str | None = None


ClientFrame = Sub | Unsub | Pub


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
    if ref is not None and not is_valid_ref(ref):
        raise FrameError("bad_frame", f"'ref' must be a string of at most {MAX_REF_LENGTH} characters")
    kind = document.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_frame", "missing string field 'type'", ref)
    if kind not in ("sub", "unsub", "pub"):
        raise FrameError(
            "unknown_type", f"unknown frame type {excerpt(kind)}; expected sub, unsub or pub", ref
        )
    topic = _topic_field(document, ref)
    if kind == "sub":
        return Sub(topic, ref, _since_field(document, ref))
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
    message_id = document.get("id")
    if message_id is not None:
        try:
            check_message_id(message_id)
        except InvalidName as error:
            raise FrameError("bad_frame", f"'id': {error}", ref) from None
    return Pub(topic, body, ref, sent, message_id)


def _since_field(document: dict[str, Any], ref: str | None) -> Position | None:
    since = document.get("since")
    if since is None:
        return None
    usage = '\'since\' must be {"epoch": <string>, "offset": <integer from -1 to 2**63 - 1>}'
    if not isinstance(since, dict):
        raise FrameError("bad_frame", usage, ref)
    epoch, offset = since.get("epoch"), since.get("offset")
    # bool is an int subclass, but `true` is no offset.
    if not isinstance(epoch, str) or type(offset) is not int or not -1 <= offset <= MAX_OFFSET:
        raise FrameError("bad_frame", usage, ref)
    try:
        return Position(epoch, offset)
    except InvalidName as error:
        raise FrameError("bad_frame", f"'since': {error}", ref) from None


def is_valid_ref(ref: object) -> bool:
    """Whether `ref` may be echoed: a string of at most MAX_REF_LENGTH characters that UTF-8 can carry."""
    return isinstance(ref, str) and len(ref) <= MAX_REF_LENGTH and _is_unicode_text(ref)


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


def client_frame_text(frame: ClientFrame) -> str:
    """Encode a client frame, as a client sends it."""
    document: dict[str, Any] = {"topic": frame.topic.name}
    if isinstance(frame, Sub):
        document["type"] = "sub"
        if frame.since is not None:
            document["since"] = {"epoch": frame.since.epoch, "offset": frame.since.offset}
    elif isinstance(frame, Unsub):
        document["type"] = "unsub"
    else:
        document["type"] = "pub"
        document["body"] = frame.body
        if frame.sent is not None:
            document["sent"] = frame.sent
        if frame.id is not None:
            document["id"] = frame.id
    if frame.ref is not None:
        document["ref"] = frame.ref
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
