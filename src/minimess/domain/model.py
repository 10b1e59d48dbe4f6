"""Topic, Uid, Position, LogState and Message: the frozen values of minimess and their invariants."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

import attrs

from minimess.domain.errors import InvalidName
from minimess.domain.excerpts import excerpt

UID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
EPOCH_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,80}")
MAX_OFFSET = 2**63 - 1
"""Kafka's offsets are signed 64-bit integers; no position lies beyond."""
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _matches(pattern: re.Pattern[str], kind: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise InvalidName(f"invalid {kind} {excerpt(value)}: must match {pattern.pattern}")

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


def check_message_id(value: object) -> str:
    """`value` if it may be a message id (`[A-Za-z0-9_-]{16,64}`); raise InvalidName otherwise."""
    if not isinstance(value, str) or MESSAGE_ID_PATTERN.fullmatch(value) is None:
        raise InvalidName(f"invalid message id {excerpt(value)}: must match {MESSAGE_ID_PATTERN.pattern}")
    return value


@attrs.frozen
class Position:
    """Where a message lies in its topic's log: offsets only grow within one epoch.

    An epoch names one log: the memory broker's log of one server process, or one partition of
    one incarnation of the Kafka topic. Offsets of different epochs cannot be compared.
    """

    epoch: str = attrs.field(validator=_matches(EPOCH_PATTERN, "epoch"))
    offset: int


@attrs.frozen
class LogState:
    """How far one server has received the log a topic lies in.

    `last` is the offset of the last record it has received (-1 when none), and every record
    from offset `first` up to `last` has passed through it.
    """

    epoch: str
    last: int
    first: int

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.last)


_NO_OFFSET: Final = timedelta(0)
# Each count of microseconds under a millisecond, to take a time down to its millisecond by one
# subtraction: datetime.replace parses its keywords on every call, ten times the cost.
_UNDER_A_MILLISECOND: Final = tuple(timedelta(microseconds=micros) for micros in range(1000))


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
    # Where the bus put this copy; None until the bus has it. Not part of what the message is.
    position: Position | None = attrs.field(default=None, kw_only=True, eq=False, hash=False)

    @timestamp.validator
    def _timestamp_is_utc(self, _attribute: attrs.Attribute[datetime], value: datetime) -> None:
        if value.utcoffset() != _NO_OFFSET:
            raise ValueError(f"message timestamp must be UTC, got {value!r}")

    @classmethod
    def create(
        cls,
        topic: Topic,
        sender: Uid,
        body: str,
        now: datetime,
        headers: Mapping[str, str] = NO_HEADERS,
        message_id: str | None = None,
    ) -> Message:
        """A new message stamped with `now` (UTC) to the millisecond, with `message_id` or a fresh one.

        Milliseconds are what the wire and the bus carry, so every copy of a message agrees.
        """
        stamp = now - _UNDER_A_MILLISECOND[now.microsecond % 1000]
        return cls(
            # 128 random bits, as hex (a uuid4 has 122), without the cost of making a UUID object.
            id=secrets.token_hex(16) if message_id is None else message_id,
            topic=topic,
            sender=sender,
            body=body,
            timestamp=stamp,
            headers=headers,
        )

    def at(self, position: Position) -> Message:
        """This message at `position`: attrs.evolve's result, without its per-call field lookup
        (every publish and every delivered record makes one)."""
        return Message(
            self.id,
            self.topic,
            self.sender,
            self.body,
            self.timestamp,
            headers=self.headers,
            position=position,
        )

    @property
    def offset(self) -> int:
        """The offset of this copy in its log; -1 before the bus has it."""
        return -1 if self.position is None else self.position.offset
