"""MessagingService through its public methods, on the real memory broker, with recording fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from minimess.adapters.memory import MemoryBroker
from minimess.app.messaging import MessagingCounters, MessagingService
from minimess.domain.errors import BrokerUnavailable, Forbidden, IdReused, PublishTimeout, TooManyTopics
from minimess.domain.model import Message, Position, Topic, Uid
from minimess.domain.permissions import Grant, patterns
from minimess.domain.ports import BusHealth, Room
from tests.timeouts import scaled
from tests.unit.fakes import HeldBroker

NEWS, SPORT = Topic("news"), Topic("sport")
MAX_TOPICS = 3
NOW = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class RecordingRenderer:
    """Renders a message as its body and a tick as b"tick", keeping every message it rendered."""

    def __init__(self) -> None:
        self.rendered: list[Message] = []

    def message(self, message: Message) -> bytes:
        self.rendered.append(message)
        return message.body.encode()

    def time(self, now: datetime) -> bytes:
        return b"tick"


class RecordingOutbox:
    def __init__(self, capacity: int = 10_000, byte_capacity: int = 2**30) -> None:
        # How many frames, and bytes, it takes in all; a replay that does not fit in what is left
        # is refused.
        self.capacity = capacity
        self.byte_capacity = byte_capacity
        self.frames: list[bytes] = []
        self.pushed = asyncio.Event()

    def push(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.pushed.set()

    def room(self) -> Room:
        return Room(self.capacity - len(self.frames), self.byte_capacity - sum(map(len, self.frames)))

    async def until_frames(self, count: int) -> None:
        async with asyncio.timeout(scaled(5)):
            while len(self.frames) < count:
                self.pushed.clear()
                await self.pushed.wait()


@attrs.frozen
class StubHealth:
    ready: bool
    counted: Mapping[str, int]

    def is_ready(self) -> bool:
        return self.ready

    def counters(self) -> Mapping[str, int]:
        return self.counted

    def lag(self) -> Mapping[int, int]:
        return {}


def new_service(
    broker: MemoryBroker,
    renderer: RecordingRenderer | None = None,
    tick: float = 0,
    health: BusHealth | None = None,
) -> MessagingService:
    health, renderer = health or broker, renderer or RecordingRenderer()
    return MessagingService(broker, health, renderer, FixedClock(), max_topics=MAX_TOPICS, tick=tick)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def renderer() -> RecordingRenderer:
    return RecordingRenderer()


@pytest.fixture
async def service(broker: MemoryBroker, renderer: RecordingRenderer) -> AsyncIterator[MessagingService]:
    service = new_service(broker, renderer)
    async with service.running():
        yield service


async def test_publish_stamps_the_message_and_hands_it_to_the_bus(
    service: MessagingService, renderer: RecordingRenderer
) -> None:
    """The message carries the session's uid, the topic, the body, the clock's time and the headers."""
    alice = service.connect(Uid("alice"), RecordingOutbox())
    service.subscribe(alice, NEWS)
    message = await service.publish(alice, NEWS, "hi", {"h": "1"})
    assert (message.sender, message.topic, message.body, message.timestamp) == (Uid("alice"), NEWS, "hi", NOW)
    assert message.headers == {"h": "1"}
    assert renderer.rendered == [message]


async def test_a_message_reaches_the_subscribers_of_its_topic_from_then_on(service: MessagingService) -> None:
    """The publisher too, when subscribed; nothing published before a subscription is replayed."""
    boxes = {uid: RecordingOutbox() for uid in ("alice", "bob", "carol")}
    alice, bob, carol = (service.connect(Uid(uid), box) for uid, box in boxes.items())
    service.subscribe(alice, NEWS)
    service.subscribe(bob, SPORT)
    await service.publish(carol, NEWS, "early")
    service.subscribe(carol, NEWS)
    await service.publish(carol, NEWS, "later")
    assert {uid: box.frames for uid, box in boxes.items()} == {
        "alice": [b"early", b"later"],
        "bob": [],
        "carol": [b"later"],
    }


async def test_every_subscriber_sees_the_one_publish_order(service: MessagingService) -> None:
    boxes = [RecordingOutbox() for _ in range(3)]
    sessions = [service.connect(Uid(f"s{i}"), box) for i, box in enumerate(boxes)]
    for session in sessions:
        service.subscribe(session, NEWS)
    for i in range(12):
        await service.publish(sessions[i % 3], NEWS, f"m{i}")
    assert [box.frames for box in boxes] == [[f"m{i}".encode() for i in range(12)]] * 3


async def test_a_message_is_rendered_once_for_all_subscribers_and_never_without_one(
    service: MessagingService, renderer: RecordingRenderer
) -> None:
    """Three subscribers get the very same frame object; a topic nobody holds here costs no render."""
    boxes = [RecordingOutbox() for _ in range(3)]
    for i, box in enumerate(boxes):
        service.subscribe(service.connect(Uid(f"s{i}"), box), NEWS)
    publisher = service.connect(Uid("pub"), RecordingOutbox())
    await service.publish(publisher, SPORT, "unheard")
    await service.publish(publisher, NEWS, "hi")
    assert [message.body for message in renderer.rendered] == ["hi"]
    assert boxes[0].frames[0] is boxes[1].frames[0] is boxes[2].frames[0]
    assert service.counters().deliveries == 3


async def test_subscribe_and_unsubscribe_are_idempotent(service: MessagingService) -> None:
    """Subscribing twice delivers once; unsubscribing twice, or from a topic not held, changes nothing."""
    box = RecordingOutbox()
    alice = service.connect(Uid("alice"), box)
    first, again = service.subscribe(alice, SPORT), service.subscribe(alice, SPORT)
    assert first == again
    assert (first.topic, first.recovered, first.replay) == (SPORT, None, ())
    service.subscribe(alice, NEWS)
    await service.publish(alice, SPORT, "once")
    service.unsubscribe(alice, Topic("never-held"))
    service.unsubscribe(alice, SPORT)
    service.unsubscribe(alice, SPORT)
    await service.publish(alice, SPORT, "after")
    assert (box.frames, alice.topics) == ([b"once"], (NEWS,))


async def test_unsubscribe_keeps_the_other_topics_and_subscribers(service: MessagingService) -> None:
    """Alice leaving news keeps her on sport and keeps Bob on news."""
    alice_box, bob_box = RecordingOutbox(), RecordingOutbox()
    alice, bob = service.connect(Uid("alice"), alice_box), service.connect(Uid("bob"), bob_box)
    for session, topic in ((alice, NEWS), (alice, SPORT), (bob, NEWS)):
        service.subscribe(session, topic)
    service.unsubscribe(alice, NEWS)
    await service.publish(bob, NEWS, "n")
    await service.publish(bob, SPORT, "s")
    assert (alice_box.frames, bob_box.frames) == ([b"s"], [b"n"])


def test_a_session_holds_at_most_max_topics(service: MessagingService) -> None:
    """Past the limit subscribing raises; a held topic, a freed slot or another session is fine.

    Topics are listed in the order they were subscribed to.
    """
    alice, bob = (service.connect(Uid(uid), RecordingOutbox()) for uid in ("alice", "bob"))
    held = [Topic(f"t{i}") for i in range(MAX_TOPICS)]
    for topic in held:
        service.subscribe(alice, topic)
        service.subscribe(bob, topic)
    with pytest.raises(TooManyTopics, match=str(MAX_TOPICS)):
        service.subscribe(alice, Topic("extra"))
    service.subscribe(alice, held[0])
    service.unsubscribe(alice, held[1])
    service.subscribe(alice, Topic("extra"))
    assert alice.topics == (held[0], held[2], Topic("extra"))
    assert service.max_topics == MAX_TOPICS


async def test_disconnect_forgets_the_session_and_its_topics(service: MessagingService) -> None:
    box = RecordingOutbox()
    alice, bob = service.connect(Uid("alice"), box), service.connect(Uid("bob"), RecordingOutbox())
    service.subscribe(alice, NEWS)
    service.subscribe(alice, SPORT)
    service.disconnect(alice)
    await service.publish(bob, NEWS, "n")
    await service.publish(bob, SPORT, "s")
    assert (box.frames, alice.topics) == ([], ())
    assert service.counters() == MessagingCounters(
        connections=1,
        deliveries=0,
        repeats_skipped=0,
        recoveries=0,
        recoveries_failed=0,
        history_messages=2,
        bus={},
    )


async def test_readiness_and_bus_counters_come_from_the_bus_health(broker: MemoryBroker) -> None:
    service = new_service(broker, health=StubHealth(ready=False, counted={"skipped": 2}))
    async with service.running():
        alice = service.connect(Uid("alice"), RecordingOutbox())
        service.subscribe(alice, NEWS)
        await service.publish(alice, NEWS, "hi")
    assert not service.is_ready()
    counters = service.counters()
    assert (counters.connections, counters.deliveries, counters.bus) == (1, 1, {"skipped": 2})


async def test_ticks_reach_every_connection_and_none_when_tick_is_0(broker: MemoryBroker) -> None:
    """With a tick, connected sessions get `time` frames, subscribed or not; disconnected ones do not."""
    ticking, silent = new_service(broker, tick=0.001), new_service(broker, tick=0)
    subscribed, idle, gone, unticked = (RecordingOutbox() for _ in range(4))
    ticking.subscribe(ticking.connect(Uid("subscribed"), subscribed), NEWS)
    ticking.connect(Uid("idle"), idle)
    ticking.disconnect(ticking.connect(Uid("gone"), gone))
    silent.connect(Uid("unticked"), unticked)
    async with ticking.running(), silent.running():
        await idle.until_frames(3)
    assert subscribed.frames[:3] == idle.frames[:3] == [b"tick"] * 3
    assert (gone.frames, unticked.frames) == ([], [])


async def test_a_service_delivers_what_any_server_publishes_until_running_ends_even_by_an_error(
    broker: MemoryBroker,
) -> None:
    receiver, publisher = new_service(broker), new_service(broker)
    box = RecordingOutbox()
    receiver.subscribe(receiver.connect(Uid("alice"), box), NEWS)
    bob = publisher.connect(Uid("bob"), RecordingOutbox())

    async def receive_one_then_crash() -> None:
        async with receiver.running():
            await publisher.publish(bob, NEWS, "while running")
            raise RuntimeError("crashed")

    async with publisher.running():
        with pytest.raises(RuntimeError, match="crashed"):
            await receive_one_then_crash()
        await publisher.publish(bob, NEWS, "after")
    assert box.frames == [b"while running"]


# --- grants ----------------------------------------------------------------------------------------


def _limited(uid: str, subscribe: list[str] | None, publish: list[str] | None) -> Grant:
    return Grant(
        Uid(uid),
        expires=NOW + timedelta(hours=1),
        subscribe=None if subscribe is None else patterns(subscribe),
        publish=None if publish is None else patterns(publish),
    )


async def test_a_session_without_a_grant_may_use_every_topic(service: MessagingService) -> None:
    """An open server: connect without a grant, subscribe and publish anywhere."""
    alice = service.connect(Uid("alice"), RecordingOutbox())
    assert alice.grant == Grant.anything(Uid("alice"))
    service.subscribe(alice, Topic("bob:inbox"))
    await service.publish(alice, Topic("bob:inbox"), "hi")


async def test_subscribing_to_a_topic_the_grant_does_not_allow_is_forbidden_and_changes_nothing(
    service: MessagingService,
) -> None:
    """The session holds no new topic and receives nothing of it; allowed topics work as before."""
    box = RecordingOutbox()
    alice = service.connect(Uid("alice"), box, _limited("alice", ["alice:*"], None))
    with pytest.raises(Forbidden, match="subscribe to news"):
        service.subscribe(alice, NEWS)
    with pytest.raises(Forbidden, match="subscribe to news"):
        await service.subscribe_since(alice, NEWS, Position("mem-0", -1))
    service.subscribe(alice, Topic("alice:inbox"))
    bob = service.connect(Uid("bob"), RecordingOutbox())
    await service.publish(bob, NEWS, "not for alice")
    await service.publish(bob, Topic("alice:inbox"), "for alice")
    assert alice.topics == (Topic("alice:inbox"),)
    assert box.frames == [b"for alice"]


async def test_publishing_on_a_topic_the_grant_does_not_allow_is_forbidden_and_publishes_nothing(
    service: MessagingService,
) -> None:
    box = RecordingOutbox()
    reader = service.connect(Uid("reader"), box)
    service.subscribe(reader, NEWS)
    service.subscribe(reader, SPORT)
    alice = service.connect(Uid("alice"), RecordingOutbox(), _limited("alice", None, ["sport"]))
    with pytest.raises(Forbidden, match="publish on news"):
        await service.publish(alice, NEWS, "spoof")
    await service.publish(alice, SPORT, "goal")
    assert box.frames == [b"goal"]


async def test_a_publish_repeated_with_its_id_is_still_held_to_the_grant(service: MessagingService) -> None:
    """The history's answer to a known id is no way around the publish list."""
    bob = service.connect(Uid("bob"), RecordingOutbox())
    await service.publish(bob, NEWS, "original", message_id="m" * 16)
    alice = service.connect(Uid("alice"), RecordingOutbox(), _limited("alice", None, []))
    with pytest.raises(Forbidden):
        await service.publish(alice, NEWS, "original", message_id="m" * 16)


def test_a_grant_for_another_uid_cannot_serve_a_session(broker: MemoryBroker) -> None:
    service = new_service(broker)
    with pytest.raises(ValueError, match="grant for bob"):
        service.connect(Uid("alice"), RecordingOutbox(), _limited("bob", None, None))


async def test_each_message_fanned_out_to_local_subscribers_is_reported_once_before_its_frames(
    broker: MemoryBroker,
) -> None:
    """The hook that times fan-outs hears of every message that local subscribers get, before the first
    frame is pushed; not of a message nobody here holds, nor of a repeat skipped on delivery."""
    box = RecordingOutbox()
    frames_when_started: list[int] = []
    service = MessagingService(
        broker,
        broker,
        RecordingRenderer(),
        FixedClock(),
        max_topics=MAX_TOPICS,
        tick=0,
        fan_out_started=lambda: frames_when_started.append(len(box.frames)),
    )
    async with service.running():
        alice = service.connect(Uid("alice"), box)
        service.subscribe(alice, NEWS)
        await service.publish(alice, NEWS, "one")
        await service.publish(alice, SPORT, "nobody here holds sport")
        repeated = Message.create(NEWS, Uid("bob"), "twice", NOW, message_id="bob-1")
        await broker.publish(repeated)
        await broker.publish(repeated)
    assert frames_when_started == [0, 1]
    assert box.frames == [b"one", b"twice"]
    assert service.counters().repeats_skipped == 1


# --- pipelined publishes -----------------------------------------------------------------------------

ID = "pipelined-id-0001"


@pytest.fixture
async def held() -> AsyncIterator[tuple[MessagingService, HeldBroker]]:
    """A service on a bus that answers each publish when the test releases it."""
    broker = HeldBroker()
    service = MessagingService(
        broker, broker, RecordingRenderer(), FixedClock(), max_topics=MAX_TOPICS, tick=0
    )
    async with service.running():
        yield service, broker


async def test_two_publishes_of_one_id_in_flight_at_once_are_one_message_with_one_position(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    """A repeat read before the bus answered its original waits for that answer: nothing twice on the bus."""
    service, broker = held
    box = RecordingOutbox()
    service.subscribe(service.connect(Uid("reader"), box), NEWS)
    alice = service.connect(Uid("alice"), RecordingOutbox())
    first = await service.hand_over(alice, NEWS, "once", message_id=ID)
    second = await service.hand_over(alice, NEWS, "once", message_id=ID)
    assert not first.done()
    assert len(broker.held) == 1
    await broker.release(0)
    original, repeat = await first.wait(), await second.wait()
    assert original.position is not None
    assert repeat.position == original.position
    assert repeat.id == original.id == ID
    assert box.frames == [b"once"]


async def test_an_id_in_flight_is_refused_on_another_topic_or_from_another_sender(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    service, broker = held
    alice = service.connect(Uid("alice"), RecordingOutbox())
    bob = service.connect(Uid("bob"), RecordingOutbox())
    await service.hand_over(alice, NEWS, "original", message_id=ID)
    with pytest.raises(IdReused):
        await service.hand_over(alice, SPORT, "elsewhere", message_id=ID)
    with pytest.raises(IdReused):
        await service.hand_over(bob, NEWS, "someone else's", message_id=ID)
    assert len(broker.held) == 1


async def test_a_repeat_shares_its_originals_failure_and_a_retry_after_it_is_handed_over_again(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    """The outcome unknown, both say so; the client's retry with the id is a publish of its own."""
    service, broker = held
    alice = service.connect(Uid("alice"), RecordingOutbox())
    first = await service.hand_over(alice, NEWS, "maybe", message_id=ID)
    second = await service.hand_over(alice, NEWS, "maybe", message_id=ID)
    broker.fail(0, PublishTimeout("no answer"))
    for publishing in (first, second):
        with pytest.raises(PublishTimeout):
            await publishing.wait()
    retry = await service.hand_over(alice, NEWS, "maybe", message_id=ID)
    assert len(broker.held) == 2
    # One turn of the loop runs the failed publish's callbacks: they must leave the retry's place.
    await asyncio.sleep(0)
    # Still in flight, the retry is the original for a repeat that follows it.
    assert await service.hand_over(alice, NEWS, "maybe", message_id=ID) is retry
    await broker.release(1)
    assert (await retry.wait()).id == ID
    assert len(broker.held) == 2


async def test_a_repeat_read_while_its_original_is_still_being_handed_over_waits_for_it(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    """The bus may take a while to take a message (aiokafka waits for room): a repeat meanwhile,
    from another connection of the same uid, must not be handed over a second time."""
    service, broker = held
    broker.taking = asyncio.get_running_loop().create_future()
    old, new = (service.connect(Uid("alice"), RecordingOutbox()) for _ in range(2))
    first = asyncio.create_task(service.hand_over(old, NEWS, "once", message_id=ID))
    async with asyncio.timeout(scaled(10)):
        await broker.waiting.wait()
    second = await service.hand_over(new, NEWS, "once", message_id=ID)
    broker.taking.set_result(None)
    original = await first
    await broker.release(0)
    assert len(broker.held) == 1
    assert (await second.wait()).position == (await original.wait()).position


async def test_a_repeat_of_a_publish_the_bus_refused_to_take_is_refused_alike_and_a_retry_is_new(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    service, broker = held
    broker.taking = asyncio.get_running_loop().create_future()
    alice = service.connect(Uid("alice"), RecordingOutbox())
    first = asyncio.create_task(service.hand_over(alice, NEWS, "maybe", message_id=ID))
    async with asyncio.timeout(scaled(10)):
        await broker.waiting.wait()
    second = await service.hand_over(alice, NEWS, "maybe", message_id=ID)
    broker.taking.set_exception(BrokerUnavailable("Kafka is not reachable"))
    with pytest.raises(BrokerUnavailable):
        await first
    with pytest.raises(BrokerUnavailable):
        await second.wait()
    broker.taking = None
    retry = await service.hand_over(alice, NEWS, "maybe", message_id=ID)
    await broker.release(0)
    assert (await retry.wait()).id == ID


async def test_publishes_handed_over_without_waiting_are_answered_each_with_its_own_position(
    held: tuple[MessagingService, HeldBroker],
) -> None:
    """Answered by the bus in reverse, each publish still gets its own message's position."""
    service, broker = held
    alice = service.connect(Uid("alice"), RecordingOutbox())
    handed = [await service.hand_over(alice, NEWS, f"m{n}") for n in range(3)]
    await broker.release(2, 1, 0)
    positioned = [await publishing.wait() for publishing in handed]
    assert [message.body for message in positioned] == ["m0", "m1", "m2"]
    assert [message.offset for message in positioned] == [2, 1, 0]
