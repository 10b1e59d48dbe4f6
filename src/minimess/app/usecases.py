"""The use cases of a server: connect, subscribe, unsubscribe, publish and disconnect."""

from __future__ import annotations

import attrs

from minimess.app.hub import Hub
from minimess.domain.errors import TooManyTopics
from minimess.domain.model import Message, Subscription, Topic, Trace, Uid
from minimess.domain.ports import Broker, Clock, Outbox


@attrs.define(eq=False)
class Session:
    """One client connection: who it is, where its frames go, and what it is subscribed to."""

    uid: Uid
    outbox: Outbox
    # Insertion-ordered so that listings follow the order the client subscribed in.
    _topics: dict[Topic, None] = attrs.field(factory=dict, init=False)

    @property
    def topics(self) -> tuple[Topic, ...]:
        return tuple(self._topics)

    def holds(self, topic: Topic) -> bool:
        return topic in self._topics

    def add(self, topic: Topic) -> None:
        self._topics[topic] = None

    def remove(self, topic: Topic) -> bool:
        """Drop `topic`; whether the session held it."""
        return self._topics.pop(topic, False) is None

    def clear(self) -> frozenset[Topic]:
        """Drop every topic; the ones the session held."""
        topics = frozenset(self._topics)
        self._topics.clear()
        return topics


class Messaging:
    """Orchestrates the hub and the broker for every connection of one server."""

    def __init__(self, broker: Broker, hub: Hub, clock: Clock, max_topics: int) -> None:
        self._broker = broker
        self._hub = hub
        self._clock = clock
        self._max_topics = max_topics

    def connect(self, uid: Uid, outbox: Outbox) -> Session:
        """Register a new connection; it receives broadcasts but no topic yet."""
        self._hub.connect(outbox)
        return Session(uid=uid, outbox=outbox)

    def subscribe(self, session: Session, topic: Topic) -> Subscription:
        """Deliver every message published on `topic` from now on to the session (idempotent)."""
        if not session.holds(topic):
            if len(session.topics) >= self._max_topics:
                raise TooManyTopics(f"a connection may hold at most {self._max_topics} topics")
            session.add(topic)
            self._hub.attach(session.outbox, topic)
        return Subscription(session.uid, topic)

    def unsubscribe(self, session: Session, topic: Topic) -> None:
        """Stop delivering `topic` to the session (idempotent)."""
        if session.remove(topic):
            self._hub.detach(session.outbox, topic)

    async def publish(self, session: Session, topic: Topic, body: str, trace: Trace | None = None) -> Message:
        """Publish `body` on `topic` as the session's uid; return once the broker accepted it."""
        message = Message.create(topic, session.uid, body, self._clock.now(), trace)
        await self._broker.publish(message)
        return message

    def disconnect(self, session: Session) -> None:
        """Forget the connection and all its subscriptions."""
        self._hub.disconnect(session.outbox, session.clear())

    def deliver(self, message: Message) -> None:
        """Hand one message from the bus to every local subscriber of its topic."""
        self._hub.fan_out(message)
