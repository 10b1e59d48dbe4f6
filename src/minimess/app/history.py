"""The recent messages of every topic a server has received, bounded, for recovery and repeats."""

from __future__ import annotations

import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

import attrs

from minimess.domain.model import LogState, Message, Position, Topic

# What a kept message costs beyond its body: the Message, its id, and the index entries.
_OVERHEAD_BYTES = 400
# Messages known only by their id (read back from the bus for a recovery) kept at most, oldest
# forgotten first: a bound in frames, whatever the recoveries read.
REMEMBERED_IDS = 10_000


@attrs.frozen(kw_only=True)
class HistoryLimits:
    """How much a server keeps: per topic, for how long, and in all."""

    per_topic: int
    ttl: float
    total_bytes: int


@attrs.define
class _Kept:
    message: Message
    size: int
    kept_at: float
    # Evicted from its topic; its entry in the arrivals may still wait to be passed over.
    evicted: bool = False


class _TopicLog:
    """One topic's kept messages, oldest first, and the last offset it forgot."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.kept: deque[_Kept] = deque()
        # The offset of the newest message evicted; -1: none.
        self.forgot_upto = -1


class History:
    """Per topic, the messages this server received most recently, oldest evicted first.

    Everything received goes in, in bus order. A topic keeps at most `per_topic` messages, each
    for at most `ttl` seconds, and all topics together at most `total_bytes` (oldest first, in
    whatever topic). Message ids are indexed, so that a repeated publish is recognised for as
    long as its original is kept.
    """

    def __init__(self, limits: HistoryLimits, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._topics: dict[Topic, _TopicLog] = {}
        # Every kept message by id; ids are unique across topics.
        self._by_id: dict[str, Message] = {}
        # Every kept message in the order received, for eviction by age and by total size.
        # Entries a per-topic eviction already dropped stay here until they reach the front, or
        # until they are as many as the live ones and the deque is rebuilt without them.
        self._arrivals: deque[tuple[Topic, _Kept]] = deque()
        self._dead = 0
        self.bytes = 0
        # Set once a topic with nothing left was dropped: from then on, a topic without an entry
        # may have had messages this history no longer knows of.
        self._forgot_topics = False
        # By id, messages this server did not receive live but read back for a recovery (a topic
        # it did not need when they passed), with when: a retry of one must find its original.
        self._remembered: OrderedDict[str, tuple[Message, float]] = OrderedDict()

    def add(self, message: Message) -> None:
        """Keep `message` (its position set), evicting what the limits no longer allow."""
        assert message.position is not None
        topic = message.topic
        log = self._topics.get(topic)
        if log is None or log.epoch != message.position.epoch:
            replaced = log is not None
            if log is not None:
                self._forget_topic(topic)
            log = self._topics[topic] = _TopicLog(message.position.epoch)
            if replaced or self._forgot_topics:
                # Another epoch came and went, or the topic was dropped earlier: what came before
                # this message in this epoch is not known.
                log.forgot_upto = message.position.offset - 1
        now = self._monotonic()
        size = sys.getsizeof(message.body) + _OVERHEAD_BYTES
        if message.headers:
            size += sum(len(name) + len(value) for name, value in message.headers.items())
        kept = _Kept(message, size, now)
        log.kept.append(kept)
        self._by_id[message.id] = message
        self._arrivals.append((topic, kept))
        self.bytes += kept.size
        if len(log.kept) > self.limits.per_topic:
            self._evict_oldest(log)
        self._evict_expired_and_excess(now)

    def find(self, message_id: str) -> Message | None:
        """The kept (or remembered) message with this id, on whatever topic."""
        kept = self._by_id.get(message_id)
        if kept is not None or not self._remembered:
            return kept
        remembered = self._remembered.get(message_id)
        if remembered is None:
            return None
        message, remembered_at = remembered
        if remembered_at <= self._monotonic() - self.limits.ttl:
            del self._remembered[message_id]
            return None
        return message

    def remember(self, message: Message) -> None:
        """Know `message` by its id for `ttl`, without keeping it in its topic's log.

        For messages read back from the bus rather than received live: they came before what the
        topic's log holds, so they cannot go into it, yet a retry with their id is a repeat.
        The earliest copy of an id is the original: one with a later offset is not remembered.
        """
        known = self.find(message.id)
        if known is not None and known.position == message.position:
            return
        if known is not None and known.topic == message.topic and known.offset < message.offset:
            return
        self._remembered[message.id] = (message, self._monotonic())
        self._remembered.move_to_end(message.id)
        while len(self._remembered) > REMEMBERED_IDS:
            self._remembered.popitem(last=False)

    def after(self, topic: Topic, since: Position, log: LogState) -> Sequence[Message] | None:
        """The kept messages of `topic` after `since`, up to `log.last`; None unless all are kept.

        All are kept when `since` is in the log's epoch and nothing after it was evicted or came
        before this server started receiving the log (`log.first`).
        """
        if since.epoch != log.epoch or since.offset > log.last:
            return None
        if since.offset == log.last:
            return ()  # nothing came after it, whatever is kept
        self._evict_expired_and_excess(self._monotonic())
        kept_log = self._topics.get(topic)
        if kept_log is None or kept_log.epoch != log.epoch:
            if self._forgot_topics:
                return None
            return () if since.offset + 1 >= log.first else None
        if since.offset + 1 < max(log.first, kept_log.forgot_upto + 1):
            return None
        return [kept.message for kept in kept_log.kept if since.offset < kept.message.offset <= log.last]

    @property
    def message_count(self) -> int:
        return len(self._by_id)

    def _evict_expired_and_excess(self, now: float) -> None:
        arrivals, limits = self._arrivals, self.limits
        deadline = now - limits.ttl
        while arrivals and (
            self.bytes > limits.total_bytes or arrivals[0][1].kept_at <= deadline or arrivals[0][1].evicted
        ):
            topic, kept = arrivals.popleft()
            if kept.evicted:
                self._dead -= 1
                continue
            # The oldest live message of all is the oldest of its topic too.
            log = self._topics.get(topic)
            if log is None or not log.kept or log.kept[0] is not kept:
                continue  # cannot happen; but never evict another message in its place
            self._evict_oldest(log)
            self._dead -= 1  # its entry in the arrivals is already gone
            if not log.kept:
                # Topics come and go; an empty entry is dropped so that they do not add up.
                del self._topics[topic]
                self._forgot_topics = True
        if self._dead > 1000 and self._dead * 2 > len(arrivals):
            # Rebuilt now and then, so that evicted messages are not held on to until their ttl.
            self._arrivals = deque(entry for entry in arrivals if not entry[1].evicted)
            self._dead = 0

    def _evict_oldest(self, log: _TopicLog) -> None:
        kept = log.kept.popleft()
        kept.evicted = True
        self._dead += 1
        log.forgot_upto = kept.message.offset
        self.bytes -= kept.size
        if self._by_id.get(kept.message.id) is kept.message:
            del self._by_id[kept.message.id]

    def _forget_topic(self, topic: Topic) -> None:
        log = self._topics.pop(topic)
        while log.kept:
            self._evict_oldest(log)
