"""Topic, Uid, Message and Subscription: the frozen values of minimess and their invariants."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

import attrs

from minimess.domain.errors import InvalidName

UID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _matches(pattern: re.Pattern[str], kind: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise InvalidName(f"invalid {kind} {value!r}: must match {pattern.pattern}")

    return check


@attrs.frozen(cache_hash=True)
class Uid:
    """Who a client says it is: `[A-Za-z0-9_.-]{1,64}`."""

    value: str = attrs.field(validator=_matches(UID_PATTERN, "uid"))

    def __str__(self) -> str:
        return self.value


@attrs.frozen(cache_hash=True)
class Topic:
    """A chat room that clients subscribe and publish to: `[A-Za-z0-9_.:-]{1,128}`."""

    name: str = attrs.field(validator=_matches(TOPIC_PATTERN, "topic"))

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class Message:
    """One published chat message; immutable from publish to every delivery."""

    id: str
    topic: Topic
    sender: Uid
    body: str
    timestamp: datetime = attrs.field()
    # Set by the edge (for example stage times for a latency breakdown), carried unchanged by
    # every broker; the core never reads them.
    headers: Mapping[str, str] = attrs.field(default=NO_HEADERS, kw_only=True, hash=False)

    @timestamp.validator
    def _timestamp_is_utc(self, _attribute: attrs.Attribute[datetime], value: datetime) -> None:
        if value.utcoffset() != timedelta(0):
            raise ValueError(f"message timestamp must be UTC, got {value!r}")

    @classmethod
    def create(
        cls, topic: Topic, sender: Uid, body: str, now: datetime, headers: Mapping[str, str] = NO_HEADERS
    ) -> Message:
        """A new message with a fresh unique id, stamped with `now` (UTC) to the millisecond.

        Milliseconds are what the wire and the bus carry, so every copy of a message agrees.
        """
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
        return cls(
            id=uuid.uuid4().hex, topic=topic, sender=sender, body=body, timestamp=stamp, headers=headers
        )


@attrs.frozen
class Subscription:
    """A client's interest in a topic: it receives the topic's messages from now on."""

    uid: Uid
    topic: Topic
