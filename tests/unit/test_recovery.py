"""subscribe_since and idempotent publish: on the memory broker, and on a scripted broker whose
log, catching up and replay the test controls step by step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import attrs
import pytest

from minimess.adapters.memory import MemoryBroker
from minimess.app.history import History, HistoryLimits
from minimess.app.messaging import MessagingService, Session, Subscribed
from minimess.domain.errors import IdReused
from minimess.domain.model import LogState, Message, Position, Topic, Uid
from minimess.domain.ports import Acknowledgement, Broker, BusHealth, Deliver
from tests.timeouts import scaled
from tests.unit.test_messaging import FixedClock, RecordingOutbox, RecordingRenderer

NEWS, SPORT = Topic("news"), Topic("sport")
STAMP = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
LIMITS = HistoryLimits(per_topic=100, ttl=1e9, total_bytes=2**30)
KAFKA_EPOCH = "k1"

T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """`awaitable`, failing the test instead of hanging it."""
    async with asyncio.timeout(scaled(5)):
        return await awaitable


def new_service(
    broker: Broker,
    health: BusHealth,
    limits: HistoryLimits = LIMITS,
    recovery_timeout: float = 5.0,
    max_replay: int = 1000,
) -> MessagingService:
    return MessagingService(
        broker,
        health,
        RecordingRenderer(),
        FixedClock(),
        max_topics=3,
        tick=0,
        history=History(limits),
        recovery_timeout=recovery_timeout,
        max_replay=max_replay,
    )


def received(subscribed: Subscribed, outbox: RecordingOutbox) -> list[bytes]:
    """What a connection sends its client: the recovered frames, then the live ones."""
    return [*subscribed.replay, *outbox.frames]


# On the memory broker


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
async def service(broker: MemoryBroker) -> AsyncIterator[MessagingService]:
    service = new_service(broker, broker)
    async with service.running():
        yield service


async def test_a_subscriber_back_after_missing_messages_gets_them_then_the_live_ones_once(
    service: MessagingService, broker: MemoryBroker
) -> None:
    publisher = service.connect(Uid("bob"), RecordingOutbox())
    seen = await service.publish(publisher, NEWS, "m0")
    for body in ("m1", "m2"):
        await service.publish(publisher, NEWS, body)
    await service.publish(publisher, SPORT, "elsewhere")
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    assert seen.position is not None
    subscribed = await service.subscribe_since(alice, NEWS, seen.position)
    assert (subscribed.recovered, subscribed.position) == (True, Position(broker.epoch, 2))
    await service.publish(publisher, NEWS, "m3")
    assert received(subscribed, outbox) == [b"m1", b"m2", b"m3"]
    counters = service.counters()
    assert (counters.recoveries, counters.recoveries_failed) == (1, 0)


async def test_a_subscriber_that_missed_nothing_recovers_nothing(
    service: MessagingService, broker: MemoryBroker
) -> None:
    publisher = service.connect(Uid("bob"), RecordingOutbox())
    last = await service.publish(publisher, NEWS, "m0")
    outbox = RecordingOutbox()
    assert last.position is not None
    subscribed = await service.subscribe_since(service.connect(Uid("alice"), outbox), NEWS, last.position)
    assert (subscribed.recovered, subscribed.replay) == (True, [])
    await service.publish(publisher, NEWS, "m1")
    assert outbox.frames == [b"m1"]


@pytest.mark.parametrize(
    ("epoch", "offset"),
    [
        pytest.param("mem-of-another-process", 0, id="unknown epoch"),
        pytest.param(None, 5, id="beyond the end"),
    ],
)
async def test_recovery_fails_for_a_position_this_log_does_not_have(
    service: MessagingService, broker: MemoryBroker, epoch: str | None, offset: int
) -> None:
    """recovered is False, nothing is replayed, and live messages still come."""
    publisher = service.connect(Uid("bob"), RecordingOutbox())
    await service.publish(publisher, NEWS, "m0")
    await service.publish(publisher, NEWS, "m1")
    outbox = RecordingOutbox()
    since = Position(epoch or broker.epoch, offset)
    subscribed = await within(service.subscribe_since(service.connect(Uid("alice"), outbox), NEWS, since))
    assert (subscribed.recovered, subscribed.replay) == (False, [])
    await service.publish(publisher, NEWS, "m2")
    assert outbox.frames == [b"m2"]
    counters = service.counters()
    assert (counters.recoveries, counters.recoveries_failed) == (1, 1)


async def test_recovery_fails_once_the_history_forgot_and_the_bus_cannot_replay(broker: MemoryBroker) -> None:
    service = new_service(broker, broker, limits=attrs.evolve(LIMITS, per_topic=2))
    async with service.running():
        publisher = service.connect(Uid("bob"), RecordingOutbox())
        first = await service.publish(publisher, NEWS, "m0")
        for i in range(1, 5):
            await service.publish(publisher, NEWS, f"m{i}")
        outbox = RecordingOutbox()
        assert first.position is not None
        subscribed = await service.subscribe_since(
            service.connect(Uid("alice"), outbox), NEWS, first.position
        )
        assert (subscribed.recovered, subscribed.replay) == (False, [])
        # What the history still has is enough from a later position.
        again = await service.subscribe_since(
            service.connect(Uid("carol"), RecordingOutbox()), NEWS, Position(broker.epoch, 2)
        )
        assert (again.recovered, again.replay) == (True, [b"m3", b"m4"])


@pytest.mark.parametrize("missed", [2, 3])
async def test_a_recovery_of_more_than_max_replay_messages_fails(broker: MemoryBroker, missed: int) -> None:
    """A replay goes to the connection in one go: past max_replay it is refused, not cut."""
    service = new_service(broker, broker, max_replay=2)
    async with service.running():
        publisher = service.connect(Uid("bob"), RecordingOutbox())
        for i in range(missed + 1):
            await service.publish(publisher, NEWS, f"m{i}")
        session = service.connect(Uid("alice"), RecordingOutbox())
        subscribed = await service.subscribe_since(session, NEWS, Position(broker.epoch, 0))
    expected = [f"m{i}".encode() for i in range(1, missed + 1)]
    assert (subscribed.recovered, subscribed.replay) == ((True, expected) if missed <= 2 else (False, []))


async def test_a_second_recovery_of_a_held_topic_replays_nothing(
    service: MessagingService, broker: MemoryBroker
) -> None:
    publisher = service.connect(Uid("bob"), RecordingOutbox())
    for i in range(3):
        await service.publish(publisher, NEWS, f"m{i}")
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    first = await service.subscribe_since(alice, NEWS, Position(broker.epoch, 0))
    second = await service.subscribe_since(alice, NEWS, Position(broker.epoch, 0))
    assert (first.recovered, first.replay) == (True, [b"m1", b"m2"])
    assert (second.recovered, second.replay, second.position) == (False, (), Position(broker.epoch, 2))
    await service.publish(publisher, NEWS, "m3")
    assert outbox.frames == [b"m3"]
    assert alice.topics == (NEWS,)
    assert service.counters().recoveries == 1


async def test_publishing_an_id_again_on_its_topic_answers_the_original_and_delivers_once(
    service: MessagingService, broker: MemoryBroker
) -> None:
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, NEWS)
    message_id = "retried-publish-0001"
    original = await service.publish(alice, NEWS, "once", message_id=message_id)
    again = await service.publish(alice, NEWS, "a different body", message_id=message_id)
    assert again == original
    assert (again.id, again.body, again.position) == (message_id, "once", Position(broker.epoch, 0))
    assert outbox.frames == [b"once"]
    assert broker.log(NEWS).last == 0  # nothing went to the bus the second time


async def test_publishing_an_id_again_on_another_topic_raises_id_reused(service: MessagingService) -> None:
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, SPORT)
    await service.publish(alice, NEWS, "news", message_id="one-id-per-topic-01")
    with pytest.raises(IdReused):
        await service.publish(alice, SPORT, "sport", message_id="one-id-per-topic-01")
    assert outbox.frames == []


async def test_a_message_the_bus_brings_again_is_skipped_and_counted(
    service: MessagingService, broker: MemoryBroker
) -> None:
    """A publish retried from another server reaches the bus twice; subscribers get it once."""
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, NEWS)
    original = await service.publish(alice, NEWS, "hi", message_id="retried-elsewhere-01")
    await broker.publish(attrs.evolve(original, position=None))
    await service.publish(alice, NEWS, "next")
    assert outbox.frames == [b"hi", b"next"]
    counters = service.counters()
    assert (counters.repeats_skipped, counters.deliveries, counters.history_messages) == (1, 2, 2)


async def test_a_repeat_of_another_topics_id_is_not_a_repeat(
    service: MessagingService, broker: MemoryBroker
) -> None:
    """Only an id the history holds for the same topic is skipped."""
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, SPORT)
    original = await service.publish(alice, NEWS, "hi", message_id="same-id-other-topic")
    await broker.publish(attrs.evolve(original, topic=SPORT, position=None))
    assert outbox.frames == [b"hi"]
    assert service.counters().repeats_skipped == 0


async def test_another_senders_id_is_refused_and_does_not_say_where_it_was_used(
    service: MessagingService,
) -> None:
    """An id is its publisher's: bob cannot get alice's ack, nor learn on which topic she used it."""
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    bob = service.connect(Uid("bob"), RecordingOutbox())
    service.subscribe(alice, NEWS)
    await service.publish(alice, NEWS, "alice's", message_id="alices-own-id-0001")
    with pytest.raises(IdReused) as refused:
        await service.publish(bob, NEWS, "bob's", message_id="alices-own-id-0001")
    with pytest.raises(IdReused) as elsewhere:
        await service.publish(bob, SPORT, "bob's", message_id="alices-own-id-0001")
    assert str(NEWS) not in str(refused.value)
    assert str(NEWS) not in str(elsewhere.value)
    assert outbox.frames == [b"alice's"]


async def test_a_message_of_another_sender_with_a_known_id_is_not_a_repeat(
    service: MessagingService, broker: MemoryBroker
) -> None:
    """Only the same sender's message on the same topic is skipped: another's is its own message."""
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, NEWS)
    original = await service.publish(alice, NEWS, "hi", message_id="same-id-other-sender")
    await broker.publish(attrs.evolve(original, sender=Uid("mallory"), body="mine", position=None))
    assert outbox.frames == [b"hi", b"mine"]
    assert service.counters().repeats_skipped == 0


# On a scripted broker


class ScriptedBroker:
    """A Broker and BusHealth whose log, catching up and replay the test decides.

    `deliver` hands a message to the receiving service as the bus would, and moves the log's
    `last`; `caught_up` and `replay` wait for their gate to open, announcing that they started.
    """

    def __init__(self, first: int = 0) -> None:
        self.epoch = KAFKA_EPOCH
        self.state: dict[Topic, LogState] = {}
        self.first = first
        self._receivers: list[Deliver] = []
        self.caught_up_calls: list[int] = []
        self.caught_up_started = asyncio.Event()
        self.caught_up_gate = asyncio.Event()
        self.caught_up_answer = True
        self.replay_calls: list[tuple[Position, int]] = []
        self.replay_started = asyncio.Event()
        self.replay_gate = asyncio.Event()
        self.replay_answer: Sequence[Message] | None = ()

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        self._receivers.append(deliver)
        try:
            yield
        finally:
            self._receivers.remove(deliver)

    def deliver(self, message: Message) -> None:
        assert message.position is not None
        log = self.state.get(message.topic)
        last = message.offset if log is None else max(log.last, message.offset)
        self.state[message.topic] = LogState(self.epoch, last=last, first=self.first)
        for deliver in self._receivers:
            deliver(message)

    async def publish(self, message: Message) -> Position:
        log = self.log(message.topic)
        position = Position(self.epoch, self.first if log is None else log.last + 1)
        self.deliver(attrs.evolve(message, position=position))
        return position

    async def hand_over(self, message: Message) -> Acknowledgement:
        acknowledgement: Acknowledgement = asyncio.get_running_loop().create_future()
        acknowledgement.set_result(await self.publish(message))
        return acknowledgement

    def log(self, topic: Topic) -> LogState | None:
        return self.state.get(topic)

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        self.caught_up_calls.append(offset)
        self.caught_up_started.set()
        await self.caught_up_gate.wait()
        return self.caught_up_answer

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        self.replay_calls.append((after, upto))
        self.replay_started.set()
        await self.replay_gate.wait()
        return self.replay_answer

    def is_ready(self) -> bool:
        return True

    def counters(self) -> Mapping[str, int]:
        return {}

    def lag(self) -> Mapping[int, int]:
        return {}


def kafka_message(offset: int, topic: Topic = NEWS) -> Message:
    return Message(
        id=f"{topic.name}-message-{offset:08d}",
        topic=topic,
        sender=Uid("bob"),
        body=f"m{offset}",
        timestamp=STAMP,
        position=Position(KAFKA_EPOCH, offset),
    )


def bodies(offsets: range | list[int]) -> list[bytes]:
    return [f"m{offset}".encode() for offset in offsets]


@pytest.fixture
def scripted() -> ScriptedBroker:
    """A bus this server started receiving at offset 5 of NEWS, and has up to 7: a recovery from
    before 5 needs the bus's replay."""
    return ScriptedBroker(first=5)


@asynccontextmanager
async def running_on(
    broker: ScriptedBroker, recovery_timeout: float = 5.0, max_replay: int = 1000
) -> AsyncIterator[MessagingService]:
    service = new_service(broker, broker, recovery_timeout=recovery_timeout, max_replay=max_replay)
    async with service.running():
        for offset in range(5, 8):
            broker.deliver(kafka_message(offset))
        yield service


def start_recovery(
    service: MessagingService, since: Position
) -> tuple[Session, RecordingOutbox, asyncio.Task[Subscribed]]:
    outbox = RecordingOutbox()
    session = service.connect(Uid("alice"), outbox)
    return session, outbox, asyncio.create_task(service.subscribe_since(session, NEWS, since))


async def test_live_messages_during_a_slow_replay_follow_it_in_order_once(scripted: ScriptedBroker) -> None:
    async with running_on(scripted) as service:
        bob_box = RecordingOutbox()
        service.subscribe(service.connect(Uid("bob"), bob_box), NEWS)
        session, outbox, recovery = start_recovery(service, Position(KAFKA_EPOCH, 2))
        await within(scripted.replay_started.wait())
        assert scripted.replay_calls == [(Position(KAFKA_EPOCH, 2), 7)]
        scripted.deliver(kafka_message(8))
        scripted.deliver(kafka_message(7))  # the bus brings one again: a repeat, skipped
        scripted.deliver(kafka_message(9))
        assert (bob_box.frames, outbox.frames) == (bodies([8, 9]), [])
        scripted.replay_answer = [kafka_message(offset) for offset in range(3, 8)]
        scripted.replay_gate.set()
        subscribed = await within(recovery)
        scripted.deliver(kafka_message(10))
    assert (subscribed.recovered, subscribed.position) == (True, Position(KAFKA_EPOCH, 9))
    assert received(subscribed, outbox) == bodies(range(3, 11))
    assert session.topics == (NEWS,)
    assert service.counters().repeats_skipped == 1


async def test_a_failed_replay_still_delivers_what_arrived_during_the_attempt(
    scripted: ScriptedBroker,
) -> None:
    async with running_on(scripted) as service:
        _, outbox, recovery = start_recovery(service, Position(KAFKA_EPOCH, 2))
        await within(scripted.replay_started.wait())
        scripted.deliver(kafka_message(8))
        scripted.deliver(kafka_message(9))
        scripted.replay_answer = None
        scripted.replay_gate.set()
        subscribed = await within(recovery)
        scripted.deliver(kafka_message(10))
    assert (subscribed.recovered, list(subscribed.replay)) == (False, bodies([8, 9]))
    assert received(subscribed, outbox) == bodies([8, 9, 10])
    # The position it answers lies before what it sends, so that a client keeps all of it.
    assert subscribed.position == Position(KAFKA_EPOCH, 7)
    counters = service.counters()
    assert (counters.recoveries, counters.recoveries_failed) == (1, 1)


@pytest.mark.parametrize("stuck", ["replay", "caught_up"])
async def test_a_recovery_that_takes_too_long_fails_and_the_topic_stays_live(
    scripted: ScriptedBroker, stuck: str
) -> None:
    since = Position(KAFKA_EPOCH, 2 if stuck == "replay" else 9)
    async with running_on(scripted, recovery_timeout=0.01) as service:
        session, outbox, recovery = start_recovery(service, since)
        subscribed = await within(recovery)  # the gates never open
        scripted.deliver(kafka_message(8))
    assert (subscribed.recovered, subscribed.replay) == (False, [])
    assert (session.topics, outbox.frames) == ((NEWS,), bodies([8]))
    assert (scripted.replay_calls != [], scripted.caught_up_calls != []) == (
        stuck == "replay",
        stuck == "caught_up",
    )


async def test_a_recovery_cancelled_with_its_connection_leaves_nothing_behind(
    scripted: ScriptedBroker,
) -> None:
    async with running_on(scripted) as service:
        session, outbox, recovery = start_recovery(service, Position(KAFKA_EPOCH, 2))
        await within(scripted.replay_started.wait())
        recovery.cancel()
        with pytest.raises(asyncio.CancelledError):
            await recovery
        assert session.topics == ()
        assert service._recovering == {}  # noqa: SLF001 - recoveries under way have no public view
        scripted.deliver(kafka_message(8))
        assert outbox.frames == []
        # The topic is not held: subscribing again is a recovery of its own.
        again = await within(service.subscribe_since(session, NEWS, Position(KAFKA_EPOCH, 7)))
    assert (again.recovered, list(again.replay)) == (True, bodies([8]))
    counters = service.counters()
    assert (counters.recoveries, counters.recoveries_failed) == (1, 0)


async def test_since_ahead_of_this_server_waits_until_it_caught_up_then_replays_from_history(
    scripted: ScriptedBroker,
) -> None:
    """The subscriber saw up to 9 on another server; this one has 7: it waits for 8 and 9, and
    sends only what came after 9."""
    async with running_on(scripted) as service:
        _, outbox, recovery = start_recovery(service, Position(KAFKA_EPOCH, 9))
        await within(scripted.caught_up_started.wait())
        assert scripted.caught_up_calls == [9]
        for offset in (8, 9, 10):
            scripted.deliver(kafka_message(offset))
        scripted.caught_up_gate.set()
        subscribed = await within(recovery)
        scripted.deliver(kafka_message(11))
    assert (subscribed.recovered, subscribed.position) == (True, Position(KAFKA_EPOCH, 10))
    assert received(subscribed, outbox) == bodies([10, 11])
    assert scripted.replay_calls == []


async def test_since_ahead_of_a_log_that_will_not_get_there_fails(scripted: ScriptedBroker) -> None:
    scripted.caught_up_answer = False
    scripted.caught_up_gate.set()
    async with running_on(scripted) as service:
        _, _, recovery = start_recovery(service, Position(KAFKA_EPOCH, 9))
        subscribed = await within(recovery)
    assert (subscribed.recovered, subscribed.replay) == (False, [])


async def test_a_topic_this_server_has_no_log_for_fails_recovery(scripted: ScriptedBroker) -> None:
    async with running_on(scripted) as service:
        session = service.connect(Uid("alice"), RecordingOutbox())
        subscribed = await within(service.subscribe_since(session, SPORT, Position(KAFKA_EPOCH, 0)))
    assert (subscribed.recovered, subscribed.position, subscribed.replay) == (False, None, [])
    assert session.topics == (SPORT,)


async def test_a_replay_that_does_not_fit_in_the_connections_queue_fails(broker: MemoryBroker) -> None:
    """A replay goes out in one go: more than the outbox takes now is refused, not overflowed."""
    service = new_service(broker, broker)
    async with service.running():
        publisher = service.connect(Uid("bob"), RecordingOutbox())
        first = await service.publish(publisher, NEWS, "seen")
        for n in range(5):
            await service.publish(publisher, NEWS, f"missed {n}")
        assert first.position is not None
        roomy = service.connect(Uid("alice"), RecordingOutbox(capacity=6))  # `subscribed` and 5
        cramped = service.connect(Uid("carol"), RecordingOutbox(capacity=5))
        ok = await within(service.subscribe_since(roomy, NEWS, first.position))
        refused = await within(service.subscribe_since(cramped, NEWS, first.position))
    assert (ok.recovered, len(ok.replay)) == (True, 5)
    assert (refused.recovered, refused.replay) == (False, [])


async def test_a_replay_of_more_bytes_than_the_connection_takes_fails(broker: MemoryBroker) -> None:
    """The byte bound counts like the frame bound: a replay over the bytes left is refused, not cut."""
    service = new_service(broker, broker)
    async with service.running():
        publisher = service.connect(Uid("bob"), RecordingOutbox())
        first = await service.publish(publisher, NEWS, "seen")
        for n in range(5):
            await service.publish(publisher, NEWS, f"missed {n}")  # 8 bytes each, as rendered here
        assert first.position is not None
        roomy = service.connect(Uid("alice"), RecordingOutbox(byte_capacity=41))
        cramped = service.connect(Uid("carol"), RecordingOutbox(byte_capacity=40))
        ok = await within(service.subscribe_since(roomy, NEWS, first.position))
        refused = await within(service.subscribe_since(cramped, NEWS, first.position))
    assert (ok.recovered, len(ok.replay)) == (True, 5)
    assert (refused.recovered, refused.replay) == (False, [])
