"""History: its three limits, find, and what `after` answers for recovery, with an injected clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minimess.app.history import History, HistoryLimits
from minimess.domain.model import LogState, Message, Position, Topic, Uid

NEWS, SPORT, MUSIC = Topic("news"), Topic("sport"), Topic("music")
EPOCH, OTHER_EPOCH = "e1", "e2"
STAMP = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
UNBOUNDED = HistoryLimits(per_topic=1000, ttl=1e9, total_bytes=2**40)


class FakeMonotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(topic: Topic, offset: int, epoch: str = EPOCH, body: str = "body") -> Message:
    """A received message: its id names topic, epoch and offset, so every one is distinct."""
    return Message(
        id=f"{topic.name}-{epoch}-{offset:012d}",
        topic=topic,
        sender=Uid("alice"),
        body=body,
        timestamp=STAMP,
        position=Position(epoch, offset),
    )


def one_size() -> int:
    """What one message made by `message` costs a history, as the history counts it."""
    history = History(UNBOUNDED)
    history.add(message(NEWS, 0))
    return history.bytes


def kept(history: History, messages: Sequence[Message]) -> list[bool]:
    return [history.find(m.id) is not None for m in messages]


def new_history(
    per_topic: int = 1000, ttl: float = 1e9, total_bytes: int = 2**40, clock: FakeMonotonic | None = None
) -> History:
    limits = HistoryLimits(per_topic=per_topic, ttl=ttl, total_bytes=total_bytes)
    return History(limits, monotonic=clock or FakeMonotonic())


# The limits, and find


def test_a_topic_keeps_at_most_per_topic_messages_evicting_its_oldest() -> None:
    """Other topics keep theirs; an evicted message is no longer found, and no longer counted."""
    history = new_history(per_topic=2)
    news = [message(NEWS, offset) for offset in range(4)]
    sport = message(SPORT, 0)
    history.add(sport)
    for m in news[:2]:
        history.add(m)
    assert kept(history, news[:2]) == [True, True]
    assert history.find(news[0].id) is news[0]
    for m in news[2:]:
        history.add(m)
    assert kept(history, [*news, sport]) == [False, False, True, True, True]
    assert (history.message_count, history.bytes) == (3, 3 * one_size())


def test_a_message_is_kept_for_less_than_ttl_seconds() -> None:
    """Kept while younger than ttl, evicted once ttl old, oldest first, whatever the topic."""
    clock = FakeMonotonic()
    history = new_history(ttl=10.0, clock=clock)
    first, second = message(NEWS, 0), message(SPORT, 0)
    history.add(first)
    clock.now += 5.0
    history.add(second)
    clock.now += 4.999
    history.add(message(MUSIC, 0))
    assert kept(history, [first, second]) == [True, True]
    clock.now += 0.001  # `first` is 10 seconds old
    history.add(message(MUSIC, 1))
    assert kept(history, [first, second]) == [False, True]
    clock.now += 5.0
    history.add(message(MUSIC, 2))
    assert kept(history, [first, second]) == [False, False]
    assert history.message_count == 3


def test_expired_messages_are_evicted_when_after_is_asked_too() -> None:
    """Nothing added since they expired: `after` still does not answer with them."""
    clock = FakeMonotonic()
    history = new_history(ttl=10.0, clock=clock)
    for offset in range(3):
        history.add(message(NEWS, offset))
    clock.now += 10.0
    assert history.after(NEWS, Position(EPOCH, 0), LogState(EPOCH, last=2, first=0)) is None
    assert (history.message_count, history.bytes) == (0, 0)


def test_past_total_bytes_the_oldest_message_of_any_topic_is_evicted_first() -> None:
    size = one_size()
    history = new_history(total_bytes=2 * size)
    a0, b0, a1, b1 = message(NEWS, 0), message(SPORT, 0), message(NEWS, 1), message(SPORT, 1)
    history.add(a0)
    history.add(b0)
    assert history.bytes == 2 * size
    history.add(a1)
    assert kept(history, [a0, b0, a1]) == [False, True, True]
    history.add(b1)
    assert kept(history, [a0, b0, a1, b1]) == [False, False, True, True]
    assert (history.message_count, history.bytes) == (2, 2 * size)


def test_a_message_already_evicted_per_topic_does_not_count_against_total_bytes() -> None:
    """Its place in the arrival order is passed over: the oldest message still kept goes next."""
    size = one_size()
    history = new_history(per_topic=1, total_bytes=2 * size)
    a0, a1, b0, c0 = message(NEWS, 0), message(NEWS, 1), message(SPORT, 0), message(MUSIC, 0)
    for m in (a0, a1, b0):
        history.add(m)
    assert kept(history, [a0, a1, b0]) == [False, True, True]
    history.add(c0)
    assert kept(history, [a1, b0, c0]) == [False, True, True]
    assert history.bytes == 2 * size


def test_a_bigger_body_costs_more_bytes() -> None:
    history = new_history()
    history.add(message(NEWS, 0, body="x"))
    small = history.bytes
    history.add(message(NEWS, 1, body="x" * 1000))
    assert history.bytes - small >= small + 999


def test_find_answers_none_for_an_id_never_kept() -> None:
    history = new_history()
    history.add(message(NEWS, 0))
    assert history.find("never-published-0000") is None
    assert history.find(message(NEWS, 0).id) == message(NEWS, 0)


# after


def filled(count: int = 5, first: int = 0, per_topic: int = 1000) -> History:
    """A history that received NEWS from offset `first` on, `count` messages."""
    history = new_history(per_topic=per_topic)
    for offset in range(first, first + count):
        history.add(message(NEWS, offset))
    return history


def offsets(answer: Sequence[Message] | None) -> list[int] | None:
    return None if answer is None else [m.offset for m in answer]


def test_after_answers_every_message_after_since_up_to_last() -> None:
    history = filled(5)
    log = LogState(EPOCH, last=4, first=0)
    assert offsets(history.after(NEWS, Position(EPOCH, 1), log)) == [2, 3, 4]
    assert offsets(history.after(NEWS, Position(EPOCH, -1), log)) == [0, 1, 2, 3, 4]
    # Kept messages past the log's last are not part of the answer.
    assert offsets(history.after(NEWS, Position(EPOCH, 1), LogState(EPOCH, last=3, first=0))) == [2, 3]


def test_after_answers_none_once_a_message_after_since_was_evicted() -> None:
    history = filled(5, per_topic=3)  # keeps 2, 3, 4
    log = LogState(EPOCH, last=4, first=0)
    assert offsets(history.after(NEWS, Position(EPOCH, 1), log)) == [2, 3, 4]
    assert history.after(NEWS, Position(EPOCH, 0), log) is None
    assert history.after(NEWS, Position(EPOCH, -1), log) is None


def test_after_answers_none_for_since_before_this_server_started_receiving() -> None:
    """Offsets before `log.first` never passed through here: they cannot be answered."""
    history = filled(3, first=10)
    log = LogState(EPOCH, last=12, first=10)
    assert offsets(history.after(NEWS, Position(EPOCH, 9), log)) == [10, 11, 12]
    assert history.after(NEWS, Position(EPOCH, 8), log) is None


def test_after_answers_none_for_another_epoch() -> None:
    history = filled(3)
    assert history.after(NEWS, Position(OTHER_EPOCH, 0), LogState(EPOCH, last=2, first=0)) is None


def test_after_answers_nothing_for_since_at_last_even_with_nothing_kept() -> None:
    history = new_history()
    assert history.after(NEWS, Position(EPOCH, 7), LogState(EPOCH, last=7, first=0)) == ()
    evicted = filled(5, per_topic=1)
    assert evicted.after(NEWS, Position(EPOCH, 4), LogState(EPOCH, last=4, first=0)) == ()


def test_after_answers_none_for_since_beyond_last() -> None:
    history = filled(3)
    assert history.after(NEWS, Position(EPOCH, 3), LogState(EPOCH, last=2, first=0)) is None


def test_a_new_epoch_drops_the_topics_old_messages() -> None:
    """Other topics keep theirs; the new epoch answers from its own messages only."""
    history = filled(3)
    history.add(message(SPORT, 0))
    history.add(message(NEWS, 0, epoch=OTHER_EPOCH))
    history.add(message(NEWS, 1, epoch=OTHER_EPOCH))
    assert kept(history, [message(NEWS, offset) for offset in range(3)]) == [False] * 3
    assert history.find(message(SPORT, 0).id) is not None
    assert (history.message_count, history.bytes) == (3, 3 * one_size())
    new_log = LogState(OTHER_EPOCH, last=1, first=0)
    assert offsets(history.after(NEWS, Position(OTHER_EPOCH, -1), new_log)) == [0, 1]
    assert history.after(NEWS, Position(EPOCH, 1), new_log) is None


def test_a_topic_never_received_answers_from_log_first_until_a_topic_is_dropped() -> None:
    """Once a topic emptied by ttl was dropped, a topic without an entry may be one forgotten:
    `after` answers None for it, unless nothing came after since."""
    clock = FakeMonotonic()
    history = new_history(ttl=10.0, clock=clock)
    never = LogState(EPOCH, last=-1, first=0)
    started_late = LogState(EPOCH, last=5, first=6)
    assert history.after(SPORT, Position(EPOCH, -1), never) == ()
    assert history.after(SPORT, Position(EPOCH, 5), started_late) == ()
    assert history.after(SPORT, Position(EPOCH, 4), LogState(EPOCH, last=5, first=5)) == ()
    assert history.after(SPORT, Position(EPOCH, 3), LogState(EPOCH, last=5, first=5)) is None

    history.add(message(NEWS, 0))
    clock.now += 10.0
    news_log = LogState(EPOCH, last=0, first=0)
    assert history.after(NEWS, Position(EPOCH, -1), news_log) is None  # expired, and dropped
    assert history.after(NEWS, Position(EPOCH, 0), news_log) == ()
    assert history.after(SPORT, Position(EPOCH, -1), never) == ()
    assert history.after(SPORT, Position(EPOCH, 4), LogState(EPOCH, last=5, first=5)) is None


@pytest.mark.parametrize("limit", ["ttl", "total_bytes"])
def test_a_topic_dropped_and_received_again_does_not_answer_past_what_it_forgot(limit: str) -> None:
    clock = FakeMonotonic()
    if limit == "ttl":
        history = new_history(ttl=10.0, clock=clock)
    else:
        history = new_history(total_bytes=3 * one_size())
    for offset in range(3):
        history.add(message(NEWS, offset))
    clock.now += 10.0
    for offset in range(3):
        history.add(message(SPORT, offset))  # by age or by bytes: NEWS is emptied and dropped
    history.add(message(NEWS, 3))
    # Offsets 1 and 2 were received and forgotten: recovering from 0 must not skip them.
    assert history.after(NEWS, Position(EPOCH, 0), LogState(EPOCH, last=3, first=0)) is None


# after never answers with a gap, whatever is added and whatever the limits


@attrs.frozen
class Add:
    topic: int
    wait: float  # seconds the clock moves before the add
    new_epoch: bool
    skip: int  # offsets passed over before this one (a log where offsets are not dense)


_adds = st.builds(
    Add,
    topic=st.integers(0, 2),
    wait=st.sampled_from([0.0, 0.0, 1.0, 2.5]),
    new_epoch=st.integers(0, 7).map(lambda n: n == 0),
    skip=st.sampled_from([0, 0, 0, 1]),
)


@attrs.define
class _TopicModel:
    """What the test added for one topic in its current epoch."""

    epoch: str
    first: int
    messages: list[Message] = attrs.field(factory=list)
    # Every message it had was evicted at some point (the history dropped the topic).
    emptied: bool = False

    @property
    def last(self) -> int:
        return self.messages[-1].offset

    def log(self) -> LogState:
        return LogState(self.epoch, last=self.last, first=self.first)


def _mark_emptied(history: History, models: dict[Topic, _TopicModel]) -> None:
    for model in models.values():
        if all(history.find(m.id) is None for m in model.messages):
            model.emptied = True


def _check_after(history: History, models: dict[Topic, _TopicModel], topic: Topic) -> None:
    model = models[topic]
    log = model.log()
    for since_offset in range(model.first - 2, log.last + 2):
        answer = history.after(topic, Position(model.epoch, since_offset), log)
        _mark_emptied(history, models)  # asking evicts what expired, in every topic
        if since_offset == log.last:
            assert answer == ()
        if since_offset > log.last:
            assert answer is None
        if answer is None:
            continue
        expected = [m for m in model.messages if since_offset < m.offset <= log.last]
        assert since_offset >= model.first - 1, "answered for offsets this server never received"
        assert list(answer) == expected
    assert history.after(topic, Position("elsewhere", log.last), log) is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    per_topic=st.integers(1, 4),
    ttl=st.sampled_from([1.0, 3.0, 6.0, 1e9]),
    total_messages=st.sampled_from([1, 2, 3, 5, 8, 10**6]),
    starts=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    adds=st.lists(_adds, max_size=40),
)
def test_after_never_answers_a_list_with_a_gap(
    per_topic: int, ttl: float, total_messages: int, starts: list[int], adds: list[Add]
) -> None:
    """Whenever `after` answers a list, it is exactly the topic's messages in (since, last]."""
    size = one_size()
    clock = FakeMonotonic()
    history = new_history(per_topic=per_topic, ttl=ttl, total_bytes=total_messages * size, clock=clock)
    topics = [NEWS, SPORT, MUSIC]
    models: dict[Topic, _TopicModel] = {}
    epochs = 0
    for add in adds:
        topic = topics[add.topic]
        model = models.get(topic)
        if model is None or add.new_epoch:
            epochs += 1
            start = starts[add.topic]
            model = models[topic] = _TopicModel(f"e{epochs}", first=start)
            offset = start
        else:
            offset = model.last + 1 + add.skip
        clock.now += add.wait
        received = message(topic, offset, epoch=model.epoch)
        history.add(received)
        model.messages.append(received)
        _mark_emptied(history, models)
        _check_after(history, models, topic)
    for topic in models:
        _check_after(history, models, topic)


def test_an_epoch_that_comes_back_is_complete_only_from_its_first_message_since() -> None:
    """E1, then a record in E2, then E1 again: what E1 had before is gone, so it is not claimed."""
    history = new_history()
    for offset in range(10):
        history.add(message(NEWS, offset))
    history.add(message(NEWS, 0, epoch="other"))
    history.add(message(NEWS, 10))
    log = LogState(EPOCH, last=10, first=0)
    assert history.after(NEWS, Position(EPOCH, 3), log) is None
    assert [m.offset for m in history.after(NEWS, Position(EPOCH, 9), log) or ()] == [10]


def test_messages_evicted_per_topic_are_not_held_on_to_until_their_ttl() -> None:
    """The memory bound holds: the arrivals are rebuilt once mostly evicted entries fill them."""
    history = new_history(per_topic=1, ttl=1e9)
    for offset in range(10_000):
        history.add(message(NEWS, offset))
    assert history.message_count == 1
    assert len(history._arrivals) <= 2_002  # noqa: SLF001 - what holds on to evicted messages
