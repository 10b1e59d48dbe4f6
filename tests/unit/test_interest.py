"""Interest: a topic is needed while held and for a while after a local publish, and watchers hear of it."""

from __future__ import annotations

from minimess.app.interest import Interest
from minimess.domain.model import Topic

NEWS, SPORT = Topic("news"), Topic("sport")


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Watcher:
    def __init__(self) -> None:
        self.changes: list[str] = []

    def began(self, topic: Topic) -> None:
        self.changes.append(f"+{topic.name}")

    def ended(self, topic: Topic) -> None:
        self.changes.append(f"-{topic.name}")


def test_a_topic_is_needed_from_its_first_hold_to_its_last_release() -> None:
    interest, watcher = Interest(after_publish=10), Watcher()
    interest.watch(watcher)
    interest.hold(NEWS)
    interest.hold(NEWS)
    interest.release(NEWS)
    assert interest.needs(b"news")
    assert not interest.needs(b"sport")
    assert not interest.needs(None)
    interest.release(NEWS)
    assert not interest.needs(b"news")
    assert watcher.changes == ["+news", "-news"]


def test_a_published_topic_is_needed_until_its_time_is_up_or_its_last_hold_after_that() -> None:
    clock = Monotonic()
    interest, watcher = Interest(after_publish=10, monotonic=clock), Watcher()
    interest.watch(watcher)
    interest.published(NEWS)
    interest.published(SPORT)
    interest.hold(SPORT)
    clock.advance(5)
    interest.published(NEWS)  # needed 10 s from now, not from the first publish
    clock.advance(6)
    interest.expire()
    assert sorted(topic.name for topic in interest.topics()) == ["news", "sport"]
    clock.advance(5)
    interest.expire()
    assert list(interest.topics()) == [SPORT]  # still held
    interest.release(SPORT)
    assert list(interest.topics()) == []
    assert watcher.changes == ["+news", "+sport", "-news", "-sport"]


def test_a_watcher_let_go_hears_nothing_more() -> None:
    interest, watcher = Interest(after_publish=10), Watcher()
    interest.watch(watcher)
    interest.hold(NEWS)
    interest.unwatch(watcher)
    interest.release(NEWS)
    assert watcher.changes == ["+news"]
