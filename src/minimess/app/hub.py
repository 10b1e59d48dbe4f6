"""The hub: which local connections hold which topics, and fan-out of a message to them."""

from __future__ import annotations

from collections.abc import Callable

from minimess.domain.model import Message, Topic
from minimess.domain.ports import Frame, Outbox


class Hub:
    """The one shared registry of a server; only the event loop touches it, so it needs no lock."""

    def __init__(self, render: Callable[[Message], Frame]) -> None:
        self._render = render
        # Topic -> the outboxes subscribed to it; a dict keeps subscription order for fan-out.
        self._subscribers: dict[Topic, dict[Outbox, None]] = {}
        # Every connected outbox, for frames that go to everybody (time ticks).
        self._connected: dict[Outbox, None] = {}
        self.deliveries = 0

    def connect(self, outbox: Outbox) -> None:
        self._connected[outbox] = None

    def disconnect(self, outbox: Outbox, topics: frozenset[Topic]) -> None:
        self._connected.pop(outbox, None)
        for topic in topics:
            self.unsubscribe(outbox, topic)

    def subscribe(self, outbox: Outbox, topic: Topic) -> None:
        self._subscribers.setdefault(topic, {})[outbox] = None

    def unsubscribe(self, outbox: Outbox, topic: Topic) -> None:
        subscribers = self._subscribers.get(topic)
        if subscribers is None:
            return
        subscribers.pop(outbox, None)
        if not subscribers:
            del self._subscribers[topic]

    def fan_out(self, message: Message) -> None:
        """Encode `message` once and push the same frame to every local subscriber of its topic."""
        subscribers = self._subscribers.get(message.topic)
        if not subscribers:
            return
        frame = self._render(message)
        # Copy: a push must stay free to change subscriptions (a slow consumer is closed from
        # inside push) without breaking this loop.
        recipients = list(subscribers)
        for outbox in recipients:
            outbox.push(frame)
        self.deliveries += len(recipients)

    def broadcast(self, frame: Frame) -> None:
        """Push one frame to every connected outbox."""
        for outbox in list(self._connected):
            outbox.push(frame)

    @property
    def connection_count(self) -> int:
        return len(self._connected)

    def subscriber_count(self, topic: Topic) -> int:
        return len(self._subscribers.get(topic, ()))
