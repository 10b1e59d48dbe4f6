"""Who a session is and which topics it may use: topic patterns and the grant a token carries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from minimess.domain.errors import Forbidden, InvalidName
from minimess.domain.model import Topic, Uid

WILDCARD = "*"
# A topic name's characters and the wildcard; as long as a topic name may be.
PATTERN_SYNTAX = re.compile(r"[A-Za-z0-9_.:*-]{1,128}")


@attrs.frozen(cache_hash=True)
class TopicPattern:
    """Topics by name, where `*` matches any run of characters (none included), e.g. `afrozalm:*`.

    Every other character stands for itself: unlike fnmatch, `?` and `[` mean nothing (and are not
    in topic names anyway). Matching takes time linear in the pattern times the topic at worst.
    """

    text: str = attrs.field()
    # The literal runs between wildcards: `a*b*` is ("a", "b", "").
    _parts: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    @text.validator
    def _check(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or PATTERN_SYNTAX.fullmatch(value) is None:
            raise InvalidName(f"invalid topic pattern {value!r}: must match {PATTERN_SYNTAX.pattern}")

    @_parts.default
    def _split(self) -> tuple[str, ...]:
        return tuple(self.text.split(WILDCARD))

    def matches(self, topic: Topic) -> bool:
        name, parts = topic.name, self._parts
        if len(parts) == 1:
            return name == parts[0]
        first, *middle, last = parts
        if len(name) < len(first) + len(last) or not (name.startswith(first) and name.endswith(last)):
            return False
        # Leftmost matches of the literal runs, in order, between the prefix and the suffix: if any
        # placement fits, this one does, because a wildcard may take whatever the runs leave.
        at, end = len(first), len(name) - len(last)
        for part in middle:
            found = name.find(part, at, end)
            if found < 0:
                return False
            at = found + len(part)
        return True

    def __str__(self) -> str:
        return self.text


def patterns(texts: Iterable[str]) -> tuple[TopicPattern, ...]:
    """The patterns written as `texts`; InvalidName names the first that is not one."""
    return tuple(TopicPattern(text) for text in texts)


@attrs.frozen
class Grant:
    """What one session may do: who it is, until when, and which topics it may subscribe and publish to.

    `subscribe` and `publish` are pattern lists, or None for any topic; an empty list allows none.
    `expires` is None for a grant that never ends (a server without authentication).
    """

    uid: Uid
    expires: datetime | None = attrs.field()
    subscribe: tuple[TopicPattern, ...] | None = attrs.field(default=None)
    publish: tuple[TopicPattern, ...] | None = attrs.field(default=None)

    @expires.validator
    def _expires_is_utc(self, _attribute: attrs.Attribute[datetime | None], value: datetime | None) -> None:
        if value is not None and value.utcoffset() != timedelta(0):
            raise ValueError(f"a grant's expiry must be in UTC, got {value!r}")

    @classmethod
    def anything(cls, uid: Uid) -> Grant:
        """Every topic, for ever: what a server without authentication gives every session."""
        return cls(uid, expires=None)

    def may_subscribe(self, topic: Topic) -> bool:
        return _allows(self.subscribe, topic)

    def may_publish(self, topic: Topic) -> bool:
        return _allows(self.publish, topic)

    def check_subscribe(self, topic: Topic) -> None:
        """Raise Forbidden unless the grant allows subscribing to `topic`."""
        if not self.may_subscribe(topic):
            raise Forbidden(f"not allowed to subscribe to {topic}")

    def check_publish(self, topic: Topic) -> None:
        """Raise Forbidden unless the grant allows publishing on `topic`."""
        if not self.may_publish(topic):
            raise Forbidden(f"not allowed to publish on {topic}")

    def seconds_left(self, now: datetime) -> float | None:
        """Seconds from `now` until the grant expires (0 or less once it has); None if it never does."""
        return None if self.expires is None else (self.expires - now).total_seconds()


def _allows(allowed: tuple[TopicPattern, ...] | None, topic: Topic) -> bool:
    return allowed is None or any(pattern.matches(topic) for pattern in allowed)
