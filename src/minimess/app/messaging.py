"""The application service of one server: sessions, subscriptions with recovery, and publishing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs

from minimess.app.history import History, HistoryLimits
from minimess.app.hub import Hub
from minimess.app.interest import Interest
from minimess.app.publishing import Publishing
from minimess.domain.errors import IdReused, PublishTimeout, TooManyTopics
from minimess.domain.model import NO_HEADERS, Message, Position, Topic, Uid
from minimess.domain.permissions import Grant
from minimess.domain.ports import Acknowledgement, Broker, BusHealth, Clock, Frame, Outbox, Renderer

DEFAULT_HISTORY = HistoryLimits(per_topic=1000, ttl=300.0, total_bytes=64 * 2**20)


@attrs.define(eq=False)
class Session:
    """One client connection: who it is, where its frames go, what it may and does subscribe to."""

    uid: Uid
    outbox: Outbox
    # Which topics it may subscribe and publish to; its uid is `uid`.
    grant: Grant
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
        if topic not in self._topics:
            return False
        del self._topics[topic]
        return True

    def clear(self) -> frozenset[Topic]:
        """Drop every topic; the ones the session held."""
        topics = frozenset(self._topics)
        self._topics.clear()
        return topics


@attrs.frozen
class Subscribed:
    """The answer to a subscription: where the topic's log stands, and what was recovered.

    `position` is where the subscriber stands once it has `replay`: every later message of the
    topic follows (None while the bus is not known). `recovered` is None when no recovery was
    asked, else whether every message after the asked position is in `replay` (rendered frames,
    in order, to send before any live one); when False, `replay` holds only what arrived while
    trying, all after `position`.
    `overflowed`: more live messages arrived during the recovery than a connection's queue
    takes; the subscriber is a slow consumer and gets nothing (it recovers on its next connection).
    """

    topic: Topic
    position: Position | None
    recovered: bool | None = None
    replay: Sequence[Frame] = ()
    overflowed: bool = False


@attrs.frozen
class MessagingCounters:
    """What the service counted since start, and what the bus says of itself."""

    connections: int
    deliveries: int
    repeats_skipped: int
    recoveries: int
    recoveries_failed: int
    history_messages: int
    bus: Mapping[str, int]


class _Recovery:
    """The live messages of a topic that arrive while one subscriber's recovery is under way."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.live: list[Message] = []
        self.overflowed = False

    def take(self, message: Message) -> None:
        if len(self.live) < self._limit:
            self.live.append(message)
        else:
            self.overflowed = True


class MessagingService:
    """Everything a driving adapter needs from one server, and the only owner of its bus and hub.

    While `running()` is open, messages from the bus go into the history and reach the local
    subscribers of their topic, and every connection gets a `time` frame every `tick` seconds
    (0: none). A message whose id the history holds for its topic is a repeat (a publish retried
    with its id) and is skipped.
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
        history: History | None = None,
        recovery_timeout: float = 5.0,
        max_replay: int = 1000,
        fan_out_started: Callable[[], None] | None = None,
        interest: Interest | None = None,
    ) -> None:
        self._broker = broker
        self._health = health
        self._renderer = renderer
        # A Hub that renders with `renderer` unless one is given (benchmarks.variants gives others).
        self._hub = Hub(renderer.message) if hub is None else hub
        self._clock = clock
        self._max_topics = max_topics
        self._tick = tick
        self._history = History(DEFAULT_HISTORY) if history is None else history
        self._recovery_timeout = recovery_timeout
        # A replay goes to the connection in one go: no more than its outbound queue takes.
        self._max_replay = max_replay
        # Recoveries under way, by topic: they collect what arrives live until they finish.
        self._recovering: dict[Topic, list[_Recovery]] = {}
        self._repeats_skipped = 0
        # Publishes with a client's message id that the bus has not answered yet, by id.
        self._waiting: dict[str, Publishing] = {}
        self._recoveries = 0
        self._recoveries_failed = 0
        # Told once per message from the bus that local subscribers are about to get, so that the
        # outbound path can time its fan-out (the Flusher, wired in bootstrap); None: not timed.
        self._fan_out_started = fan_out_started
        # The topics this server needs from the bus (the same object the bus reads, when it
        # selects); a publish keeps its topic needed for as long as the history keeps it.
        self._interest = Interest(self._history.limits.ttl) if interest is None else interest

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Receive from the bus and tick while the context is open."""
        async with self._broker.receiving(self._receive):
            ticker = asyncio.create_task(self._send_ticks())
            try:
                yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    def connect(self, uid: Uid, outbox: Outbox, grant: Grant | None = None) -> Session:
        """Register a new connection; it receives `time` frames but no topic yet.

        Without a grant it may use every topic (a server without authentication).
        """
        if grant is None:
            grant = Grant.anything(uid)
        elif grant.uid != uid:
            raise ValueError(f"a grant for {grant.uid} cannot serve a session of {uid}")
        self._hub.connect(outbox)
        return Session(uid=uid, outbox=outbox, grant=grant)

    def subscribe(self, session: Session, topic: Topic) -> Subscribed:
        """Deliver every message published on `topic` from now on to the session (idempotent).

        Raises Forbidden when the session's grant does not allow the topic.
        """
        session.grant.check_subscribe(topic)
        if not session.holds(topic):
            self._check_topic_limit(session)
            self._hold(session, topic)
            self._hub.subscribe(session.outbox, topic)
        return Subscribed(topic, self._position(topic))

    async def subscribe_since(self, session: Session, topic: Topic, since: Position) -> Subscribed:
        """Subscribe, with every message of `topic` after `since` replayed first if they can all be.

        They come from the history, or past it from the bus itself, within the recovery timeout.
        Live messages that arrive meanwhile are held back, so the subscriber gets each message
        once, in order, with no gap between the replay and what follows. A topic the session
        already holds answers `recovered` False: nothing is replayed twice into one connection.
        Raises Forbidden when the session's grant does not allow the topic.
        """
        session.grant.check_subscribe(topic)
        if session.holds(topic):
            return Subscribed(topic, self._position(topic), recovered=False)
        self._check_topic_limit(session)
        # Held before the log is read: from here on, the bus delivers the topic's records.
        self._hold(session, topic)
        # Where the log stood when live messages began to be held: a failed recovery starts there.
        start = self._position(topic)
        recovery = _Recovery(limit=self._max_replay)
        self._recovering.setdefault(topic, []).append(recovery)
        try:
            replay = await self._recover(topic, since, recovery)
        except BaseException:
            self._release(session, topic)
            raise
        finally:
            self._stop_recovering(topic, recovery)
        # No await from here on: the replay and the live messages that follow it stay in order.
        self._recoveries += 1
        if recovery.overflowed:
            self._recoveries_failed += 1
            return Subscribed(topic, self._position(topic), recovered=False, overflowed=True)
        frames = None if replay is None else self._fitting(replay, session.outbox)
        self._hub.subscribe(session.outbox, topic)
        if frames is not None:
            return Subscribed(topic, self._position(topic), True, frames)
        self._recoveries_failed += 1
        # Nothing from before. What arrived during the attempt came after `start` and is sent,
        # but for what the subscriber says it has (it may have been ahead of this server).
        live = [
            message
            for message in recovery.live
            if message.position is None
            or message.position.epoch != since.epoch
            or message.offset > since.offset
        ]
        return Subscribed(topic, start, False, [self._renderer.message(message) for message in live])

    def unsubscribe(self, session: Session, topic: Topic) -> None:
        """Stop delivering `topic` to the session (idempotent)."""
        if self._release(session, topic):
            self._hub.unsubscribe(session.outbox, topic)

    async def publish(
        self,
        session: Session,
        topic: Topic,
        body: str,
        headers: Mapping[str, str] = NO_HEADERS,
        message_id: str | None = None,
    ) -> Message:
        """Publish `body` on `topic` as the session's uid; the message, positioned, once the bus has it.

        `hand_over`, then wait for its outcome.
        """
        publishing = await self.hand_over(session, topic, body, headers, message_id)
        return await publishing.wait()

    async def hand_over(
        self,
        session: Session,
        topic: Topic,
        body: str,
        headers: Mapping[str, str] = NO_HEADERS,
        message_id: str | None = None,
    ) -> Publishing:
        """Hand `body` on `topic`, as the session's uid, to the bus; return once the bus holds it.

        Publishes handed over one after another reach the bus in that order (per topic at least);
        each one's outcome comes later, in the Publishing returned. A `message_id` the history holds
        from the same sender on this topic, or that a publish still waiting for the bus carries, is
        a repeat: it shares the original's outcome and nothing is published again. Held for another
        topic or from another sender, it raises IdReused, which says no more than that (the other
        topic may be one the session may not read). Raises Forbidden when the session's grant does
        not allow publishing on `topic`, BrokerUnavailable when nothing was handed to the bus.
        """
        session.grant.check_publish(topic)
        if message_id is not None:
            if (original := self._history.find(message_id)) is not None:
                if not _same_publish(original, topic, session.uid):
                    raise IdReused(f"message id {message_id} is already in use")
                # Every message from the bus has its position.
                assert original.position is not None
                known: Acknowledgement = asyncio.get_running_loop().create_future()
                known.set_result(original.position)
                return Publishing(original, known, self._positioned)
            # One that failed is no original: the client's retry is a publish of its own.
            if (waiting := self._waiting.get(message_id)) is not None and not waiting.failed():
                if not _same_publish(waiting.message, topic, session.uid):
                    raise IdReused(f"message id {message_id} is already in use")
                return waiting
        message = Message.create(topic, session.uid, body, self._clock.now(), headers, message_id)
        self._interest.published(topic)
        if message_id is None:
            return Publishing(message, await self._broker.hand_over(message), self._positioned)
        # Until the bus answers, a repeat of this id waits for this publish instead of making
        # another (the history holds it only once it comes back from the bus); from before the
        # bus takes it, which may take a while (aiokafka waits for room in its buffer).
        answer: Acknowledgement = asyncio.get_running_loop().create_future()
        publishing = Publishing(message, answer, self._positioned)
        self._waiting[message_id] = publishing
        answer.add_done_callback(lambda _: self._stop_waiting(message_id, publishing))
        try:
            acknowledgement = await self._broker.hand_over(message)
        except BaseException as error:
            # A repeat waiting on it gets the same answer; nobody may read it but that repeat.
            _settle(answer, error if isinstance(error, Exception) else _abandoned())
            publishing.abandon()
            raise
        if acknowledgement.done():
            _settle_from(answer, acknowledgement)
        else:
            acknowledgement.add_done_callback(lambda done: _settle_from(answer, done))
        return publishing

    def _stop_waiting(self, message_id: str, publishing: Publishing) -> None:
        # A retry after a failure may have taken the id's place already: it stays.
        if self._waiting.get(message_id) is publishing:
            del self._waiting[message_id]

    def _positioned(self, message: Message, position: Position) -> Message:
        """`message` at `position`, or at its original's if it raced its original to the bus."""
        # A repeat that raced its original to the bus is skipped on delivery; the original's
        # position is the one subscribers saw, when it is known by now.
        original = self._history.find(message.id)
        if (
            original is not None
            and _same_publish(original, message.topic, message.sender)
            and original.position is not None
        ):
            position = original.position
        return message.at(position)

    def disconnect(self, session: Session) -> None:
        """Forget the connection and all its subscriptions."""
        topics = session.clear()
        for topic in topics:
            self._interest.release(topic)
        self._hub.disconnect(session.outbox, topics)

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
            repeats_skipped=self._repeats_skipped,
            recoveries=self._recoveries,
            recoveries_failed=self._recoveries_failed,
            history_messages=self._history.message_count,
            bus=dict(self._health.counters()),
        )

    def _is_repeat(self, message: Message) -> bool:
        """Whether the history holds an earlier copy of `message` on its topic (a lower offset).

        A later copy does not make this one a repeat: a server that did not need the topic when
        the original passed may have received a retry's copy live and the original only now.
        """
        original = self._history.find(message.id)
        return (
            original is not None
            and _same_publish(original, message.topic, message.sender)
            and original.position is not None
            and message.position is not None
            and original.position.epoch == message.position.epoch
            and original.offset < message.offset
        )

    def _receive(self, message: Message) -> None:
        """What the bus delivers: keep it, hand it to recoveries under way, fan it out."""
        original = self._history.find(message.id)
        if original is not None and _same_publish(original, message.topic, message.sender):
            self._repeats_skipped += 1
            return
        self._history.add(message)
        if self._recovering:
            for recovery in self._recovering.get(message.topic, ()):
                recovery.take(message)
        if self._fan_out_started is not None and self._hub.subscriber_count(message.topic):
            self._fan_out_started()
        self._hub.fan_out(message)

    async def _recover(self, topic: Topic, since: Position, recovery: _Recovery) -> Sequence[Message] | None:
        """Every message of `topic` after `since` up to now, in order; None if not all can be had."""
        try:
            async with asyncio.timeout(self._recovery_timeout):
                log = self._broker.log(topic)
                if log is None or log.epoch != since.epoch:
                    return None
                if since.offset > log.last:
                    # The subscriber saw further on another server; wait until this one is there.
                    if not await self._broker.caught_up(topic, since.offset):
                        return None
                    log = self._broker.log(topic)
                    if log is None or log.epoch != since.epoch:
                        return None
                kept = self._history.after(topic, since, log)
                if kept is not None:
                    # Up to now: nothing was awaited since `log` was read.
                    return kept
                replayed = await self._broker.replay(topic, since, log.last)
        except TimeoutError:
            return None
        if replayed is None:
            return None
        # A repeat the live path skipped (its original was received before) is skipped here too.
        replayed = [message for message in replayed if not self._is_repeat(message)]
        for message in replayed:
            # Read back, not received live: a retry of one of them, or a later copy, is a repeat.
            self._history.remember(message)
        ids = {message.id for message in replayed}
        live = (message for message in recovery.live if message.offset > log.last and message.id not in ids)
        return [*replayed, *live]

    def _fitting(self, replay: Sequence[Message], outbox: Outbox) -> list[Frame] | None:
        """The replay's frames if the outbox takes them all now, with their `subscribed` frame; else None.

        They go out in one go, so they must fit both in frames and in bytes. The `subscribed` frame
        comes first and is smaller than any message frame of its topic: counting the last replayed
        frame against the byte bound in its place (the frame that crosses the bound is taken) is enough.
        """
        room = outbox.room()
        if len(replay) > min(self._max_replay, room.frames - 1):
            return None
        render = self._renderer.message
        frames = [render(message) for message in replay]
        if sum(map(len, frames)) >= room.bytes:
            return None
        return frames

    def _stop_recovering(self, topic: Topic, recovery: _Recovery) -> None:
        recoveries = self._recovering[topic]
        recoveries.remove(recovery)
        if not recoveries:
            del self._recovering[topic]

    def _hold(self, session: Session, topic: Topic) -> None:
        session.add(topic)
        self._interest.hold(topic)

    def _release(self, session: Session, topic: Topic) -> bool:
        """Drop `topic` from the session; whether it held it."""
        if not session.remove(topic):
            return False
        self._interest.release(topic)
        return True

    def _check_topic_limit(self, session: Session) -> None:
        if len(session.topics) >= self._max_topics:
            raise TooManyTopics(f"a connection may hold at most {self._max_topics} topics")

    def _position(self, topic: Topic) -> Position | None:
        log = self._broker.log(topic)
        return None if log is None else log.position

    async def _send_ticks(self) -> None:
        if self._tick == 0:
            return
        while True:
            await asyncio.sleep(self._tick)
            self._hub.broadcast(self._renderer.time(self._clock.now()))


def _settle(answer: Acknowledgement, error: BaseException) -> None:
    if not answer.done():
        answer.set_exception(error)


def _settle_from(answer: Acknowledgement, acknowledgement: Acknowledgement) -> None:
    """Give `answer` the bus's answer (taking its error, so that it is not reported as unread)."""
    if answer.done():
        return
    if acknowledgement.cancelled():
        answer.set_exception(_abandoned())
    elif (error := acknowledgement.exception()) is not None:
        answer.set_exception(error)
    else:
        answer.set_result(acknowledgement.result())


def _abandoned() -> PublishTimeout:
    """The answer of a publish given up while the bus was being handed it: it may have taken it."""
    return PublishTimeout("the publish was given up while the bus was taking it; its outcome is unknown")


def _same_publish(original: Message, topic: Topic, sender: Uid) -> bool:
    """Whether a message with `original`'s id, on `topic` from `sender`, is a repeat of it.

    An id is the publisher's: another sender using it (by chance or on purpose) publishes a
    message of its own, never one that stands for someone else's.
    """
    return original.topic == topic and original.sender == sender
