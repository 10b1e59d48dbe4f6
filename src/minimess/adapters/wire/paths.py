"""The request path that opens a connection: `/subscribe/id:<uid>[/topic:<topic>...]`."""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

import attrs

from minimess.domain.errors import InvalidName
from minimess.domain.model import Topic, Uid

SUBSCRIBE_PREFIX: Final = "/subscribe/"


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


def subscribe_path(uid: Uid, topics: tuple[Topic, ...]) -> str:
    """The request path that connects as `uid` subscribed to `topics` (inverse of parse_subscribe_path)."""
    return f"{SUBSCRIBE_PREFIX}id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)
