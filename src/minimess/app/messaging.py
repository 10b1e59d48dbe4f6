"""The application service of one server: sessions, subscriptions and publishing over the bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs

from minimess.app.hub import Hub
from minimess.domain.errors import TooManyTopics
from minimess.domain.model import NO_HEADERS, Message, Subscription, Topic, Uid
from minimess.domain.ports import Broker, BusHealth, Clock, Outbox, Renderer


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


@attrs.frozen
class MessagingCounters:
    """What the service counted since start, and what the bus says of itself."""

    connections: int
    deliveries: int
    bus: Mapping[str, int]


class MessagingService:
    """Everything a driving adapter needs from one server, and the only owner of its bus and hub.

    While `running()` is open, messages from the bus reach the local subscribers of their topic
    and every connection gets a `time` frame every `tick` seconds (0: none).
    """

    def __init__(
        self,
        broker: Broker,
        health: BusHealth,
        renderer: Renderer,
        clock: Clock,
        max_topics: int,
        tick: float,
        hub: Hub | None = None,
    ) -> None:
        self._broker = broker
        self._health = health
        self._renderer = renderer
        # A Hub that renders with `renderer` unless one is given (benchmarks.variants gives others).
        self._hub = Hub(renderer.message) if hub is None else hub
        self._clock = clock
        self._max_topics = max_topics
        self._tick = tick

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Receive from the bus and tick while the context is open."""
        async with self._broker.receiving(self._hub.fan_out):
            ticker = asyncio.create_task(self._send_ticks())
            try:
                yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    def connect(self, uid: Uid, outbox: Outbox) -> Session:
        """Register a new connection; it receives `time` frames but no topic yet."""
        self._hub.connect(outbox)
        return Session(uid=uid, outbox=outbox)

    def subscribe(self, session: Session, topic: Topic) -> Subscription:
        """Deliver every message published on `topic` from now on to the session (idempotent)."""
        if not session.holds(topic):
            if len(session.topics) >= self._max_topics:
                raise TooManyTopics(f"a connection may hold at most {self._max_topics} topics")
            session.add(topic)
            self._hub.subscribe(session.outbox, topic)
        return Subscription(session.uid, topic)

    def unsubscribe(self, session: Session, topic: Topic) -> None:
        """Stop delivering `topic` to the session (idempotent)."""
        if session.remove(topic):
            self._hub.unsubscribe(session.outbox, topic)

    async def publish(
        self, session: Session, topic: Topic, body: str, headers: Mapping[str, str] = NO_HEADERS
    ) -> Message:
        """Publish `body` on `topic` as the session's uid; return once the bus accepted it."""
        message = Message.create(topic, session.uid, body, self._clock.now(), headers)
        await self._broker.publish(message)
        return message

    def disconnect(self, session: Session) -> None:
        """Forget the connection and all its subscriptions."""
        self._hub.disconnect(session.outbox, session.clear())

    @property
    def max_topics(self) -> int:
        """How many topics one connection may hold."""
        return self._max_topics

    def is_ready(self) -> bool:
        """Whether the bus works, so that this server may take clients."""
        return self._health.is_ready()

    def counters(self) -> MessagingCounters:
        return MessagingCounters(
            connections=self._hub.connection_count,
            deliveries=self._hub.deliveries,
            bus=dict(self._health.counters()),
        )

    async def _send_ticks(self) -> None:
        if self._tick == 0:
            return
        while True:
            await asyncio.sleep(self._tick)
            self._hub.broadcast(self._renderer.time(self._clock.now()))
