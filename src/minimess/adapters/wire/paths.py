"""The request path that opens a connection: `/subscribe/id:<uid>[/topic:<topic>[@<epoch>:<offset>]...]`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

import attrs

from minimess.domain.errors import InvalidName
from minimess.domain.excerpts import excerpt
from minimess.domain.model import MAX_OFFSET, Position, Topic, Uid

SUBSCRIBE_PREFIX: Final = "/subscribe/"
# ASCII digits only (str.isdigit takes others), and no more than an offset can have.
_OFFSET: Final = re.compile(r"-?[0-9]{1,19}")


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
    # The topics given with a position: recover what came after it.
    since: Mapping[Topic, Position] = attrs.field(factory=dict)


def parse_subscribe_path(path: str, max_topics: int) -> SubscribeRequest:
    """Parse `/subscribe/id:<uid>[/topic:<topic>...]`; raise PathError (404 or 400) otherwise."""
    path = path.partition("?")[0]
    if not path.startswith(SUBSCRIBE_PREFIX):
        raise PathError(404, f"no such endpoint {excerpt(path)}")
    # Split before unquoting, so that an escaped "/" stays inside its segment (and is rejected).
    segments = [unquote(segment) for segment in path[len(SUBSCRIBE_PREFIX) :].removesuffix("/").split("/")]
    usage = "expected /subscribe/id:<uid>[/topic:<topic>[@<epoch>:<offset>]...]"
    if not segments[0].startswith("id:"):
        raise PathError(400, usage)
    topics: dict[Topic, None] = {}
    since: dict[Topic, Position] = {}
    try:
        uid = Uid(segments[0].removeprefix("id:"))
        for segment in segments[1:]:
            if not segment.startswith("topic:"):
                raise PathError(400, f"unexpected segment {excerpt(segment)}: {usage}")
            # A topic name has no "@", an epoch no ":": both splits are unambiguous.
            name, at, position = segment.removeprefix("topic:").partition("@")
            topic = Topic(name)
            topics[topic] = None
            if at:
                since[topic] = _position(position)
    except InvalidName as error:
        raise PathError(400, str(error)) from None
    if len(topics) > max_topics:
        raise PathError(400, f"a connection may hold at most {max_topics} topics")
    return SubscribeRequest(uid=uid, topics=tuple(topics), since=since)


def _position(text: str) -> Position:
    epoch, colon, offset = text.rpartition(":")
    usage = f"invalid position {excerpt(text)}: expected <epoch>:<offset>, the offset from -1 to 2**63 - 1"
    if not colon or _OFFSET.fullmatch(offset) is None or not -1 <= int(offset) <= MAX_OFFSET:
        raise PathError(400, usage)
    return Position(epoch, int(offset))


def subscribe_path(uid: Uid, topics: tuple[Topic, ...], since: Mapping[Topic, Position] | None = None) -> str:
    """The request path that connects as `uid` subscribed to `topics`, recovering after `since`.

    The inverse of parse_subscribe_path.
    """
    since = since or {}
    return f"{SUBSCRIBE_PREFIX}id:{uid}" + "".join(
        f"/topic:{topic}" + (f"@{since[topic].epoch}:{since[topic].offset}" if topic in since else "")
        for topic in topics
    )
