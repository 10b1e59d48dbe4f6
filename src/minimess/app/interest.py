"""Which topics this server needs from the bus: those with a local subscriber or a recent local publish."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from minimess.domain.model import Topic


class InterestWatcher(Protocol):
    """Told, on the event loop and without waiting, when a topic becomes needed and when it stops."""

    def began(self, topic: Topic) -> None: ...
    def ended(self, topic: Topic) -> None: ...


class Interest:
    """The topics a server needs, by the key their bus records carry (the topic's name, UTF-8).

    A topic is needed while something holds it (a local subscription, or one under recovery) and
    for `after_publish` seconds after a local publish on it, so that a publish retried on this
    server finds its original in the history for as long as the history keeps it. A bus may pass
    over the records of a topic not needed without reading them; while one is needed, everything
    from the moment it `began` on is delivered.
    """

    def __init__(self, after_publish: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._after_publish = after_publish
        self._monotonic = monotonic
        # How many holds each held topic has.
        self._holds: dict[Topic, int] = {}
        # Until when each recently published topic is needed; in the order of those deadlines.
        self._published: dict[Topic, float] = {}
        # The keys of every topic needed now: what a bus compares each record's key with.
        self._keys: dict[bytes, Topic] = {}
        self._watchers: list[InterestWatcher] = []

    def watch(self, watcher: InterestWatcher) -> None:
        """Tell `watcher` of every change from now on (it reads `topics()` for the ones before)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: InterestWatcher) -> None:
        self._watchers.remove(watcher)

    def needs(self, key: bytes | None) -> bool:
        """Whether a record with this key is needed here; one dict lookup, so that it costs nothing."""
        return key in self._keys

    def topics(self) -> Iterable[Topic]:
        """Every topic needed now."""
        return self._keys.values()

    def hold(self, topic: Topic) -> None:
        """Need `topic` until as many `release` calls."""
        self._holds[topic] = self._holds.get(topic, 0) + 1
        self._begin(topic)

    def release(self, topic: Topic) -> None:
        holds = self._holds.get(topic, 0) - 1
        if holds > 0:
            self._holds[topic] = holds
            return
        self._holds.pop(topic, None)
        if topic not in self._published:
            self._end(topic)

    def published(self, topic: Topic) -> None:
        """A local publish on `topic`: need it for the next `after_publish` seconds."""
        # Re-inserted, so that the deadlines stay in order and expire() looks at the front only.
        self._published.pop(topic, None)
        self._published[topic] = self._monotonic() + self._after_publish
        self._begin(topic)
        # Here too, so that the deadlines stay bounded with no bus calling it.
        self.expire()

    def expire(self) -> None:
        """Stop needing the topics published on too long ago and not held; call it now and then."""
        now = self._monotonic()
        while self._published:
            topic, until = next(iter(self._published.items()))
            if until > now:
                return
            del self._published[topic]
            if topic not in self._holds:
                self._end(topic)

    def _begin(self, topic: Topic) -> None:
        key = topic.name.encode()
        if key in self._keys:
            return
        self._keys[key] = topic
        for watcher in list(self._watchers):
            watcher.began(topic)

    def _end(self, topic: Topic) -> None:
        if self._keys.pop(topic.name.encode(), None) is None:
            return
        for watcher in list(self._watchers):
            watcher.ended(topic)
