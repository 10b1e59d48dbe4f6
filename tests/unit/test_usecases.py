"""The use cases (Messaging) and the hub on the real memory broker, observed through recording outboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest

from minimess.adapters.memory import MemoryBroker
from minimess.adapters.websocket import codec
from minimess.app.hub import Hub
from minimess.app.usecases import Messaging
from minimess.domain.errors import TooManyTopics
from minimess.domain.model import Message, Subscription, Topic, Trace, Uid
from tests.unit.fakes import RecordingOutbox, SteppingClock

NEWS = Topic("news")
SPORT = Topic("sport")
MAX_TOPICS = 3


class CountingRender:
    """The real message encoder, counting how many times it is called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, message: Message) -> bytes:
        self.calls += 1
        return codec.message_frame(message)


def _at_ms(message: Message) -> Message:
    """`message` as a client reads it back: the wire carries milliseconds."""
    timestamp = message.timestamp.replace(microsecond=message.timestamp.microsecond // 1000 * 1000)
    return attrs.evolve(message, timestamp=timestamp)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def render() -> CountingRender:
    return CountingRender()


@pytest.fixture
def hub(render: CountingRender) -> Hub:
    return Hub(render=render)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def messaging(broker: MemoryBroker, hub: Hub, clock: SteppingClock) -> AsyncIterator[Messaging]:
    """One server's use cases, attached to the broker as the WebSocket server attaches them."""
    messaging = Messaging(broker=broker, hub=hub, clock=clock, max_topics=MAX_TOPICS)
    async with broker.attach(messaging.deliver):
        yield messaging


def test_connect_registers_the_outbox_without_topics(messaging: Messaging, hub: Hub) -> None:
    """A new session belongs to its uid, holds no topic, and counts as one connection."""
    session = messaging.connect(Uid("alice"), RecordingOutbox())
    assert session.uid == Uid("alice")
    assert session.topics == ()
    assert hub.connection_count == 1


def test_subscribe_returns_the_subscription_and_lists_topics_in_order(messaging: Messaging) -> None:
    """Subscribing names the uid and topic, and the session lists its topics in subscription order."""
    session = messaging.connect(Uid("alice"), RecordingOutbox())
    assert messaging.subscribe(session, SPORT) == Subscription(Uid("alice"), SPORT)
    messaging.subscribe(session, NEWS)
    assert session.topics == (SPORT, NEWS)


async def test_publish_returns_the_message_stamped_by_the_clock(messaging: Messaging) -> None:
    """A published message carries the session's uid, the topic, the body and the clock's time."""
    session = messaging.connect(Uid("alice"), RecordingOutbox())
    now = SteppingClock().now()
    message = await messaging.publish(session, NEWS, "hi")
    assert (message.sender, message.topic, message.body, message.timestamp) == (Uid("alice"), NEWS, "hi", now)


async def test_publish_carries_the_trace_into_the_delivered_message(
    messaging: Messaging, broker: MemoryBroker
) -> None:
    """The stage times given to publish are on the returned message and on the one the bus delivers."""
    trace = Trace(sent_us=1_764_316_513_123_456, received_us=1_764_316_513_123_789)
    delivered: list[Message] = []
    async with broker.attach(delivered.append):
        session = messaging.connect(Uid("alice"), RecordingOutbox())
        message = await messaging.publish(session, NEWS, "hi", trace)
    assert message.trace == trace
    assert delivered == [message]


async def test_publish_without_a_trace_delivers_a_message_without_one(
    messaging: Messaging, broker: MemoryBroker
) -> None:
    """Untraced, as without --trace, the message holds no stage times."""
    delivered: list[Message] = []
    async with broker.attach(delivered.append):
        await messaging.publish(messaging.connect(Uid("alice"), RecordingOutbox()), NEWS, "hi")
    assert [message.trace for message in delivered] == [None]


async def test_a_subscriber_receives_a_message_published_after_it_subscribed(messaging: Messaging) -> None:
    """Bob's message on news reaches Alice, subscribed to news, as a `message` frame."""
    alice_box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), alice_box)
    messaging.subscribe(alice, NEWS)
    bob = messaging.connect(Uid("bob"), RecordingOutbox("bob"))
    message = await messaging.publish(bob, NEWS, "hello")
    assert alice_box.messages() == [_at_ms(message)]


async def test_a_subscriber_does_not_receive_messages_published_before_it_subscribed(
    messaging: Messaging,
) -> None:
    """Only messages published after subscribing arrive: nothing is stored or replayed."""
    alice_box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), alice_box)
    bob = messaging.connect(Uid("bob"), RecordingOutbox("bob"))
    await messaging.publish(bob, NEWS, "too early")
    messaging.subscribe(alice, NEWS)
    later = await messaging.publish(bob, NEWS, "in time")
    assert alice_box.messages() == [_at_ms(later)]


async def test_a_subscriber_receives_only_its_topics(messaging: Messaging) -> None:
    """A message on sport does not reach a session subscribed to news only."""
    alice_box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), alice_box)
    messaging.subscribe(alice, NEWS)
    await messaging.publish(alice, SPORT, "goal")
    assert alice_box.frames == []


async def test_a_subscribed_publisher_receives_its_own_message(messaging: Messaging) -> None:
    """A publisher subscribed to the topic gets its own message like everybody else."""
    box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), box)
    messaging.subscribe(alice, NEWS)
    message = await messaging.publish(alice, NEWS, "me too")
    assert box.messages() == [_at_ms(message)]


async def test_an_unsubscribed_publisher_does_not_receive_its_message(messaging: Messaging) -> None:
    """Publishing does not subscribe: a publisher not on the topic receives nothing."""
    box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), box)
    await messaging.publish(alice, NEWS, "into the void")
    assert box.frames == []


async def test_unsubscribe_stops_delivery(messaging: Messaging, hub: Hub) -> None:
    """After unsubscribing, the session receives no more messages on that topic."""
    box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), box)
    messaging.subscribe(alice, NEWS)
    first = await messaging.publish(alice, NEWS, "one")
    messaging.unsubscribe(alice, NEWS)
    await messaging.publish(alice, NEWS, "two")
    assert box.messages() == [_at_ms(first)]
    assert alice.topics == ()
    assert hub.subscriber_count(NEWS) == 0


async def test_unsubscribe_keeps_the_other_subscribers_and_topics(messaging: Messaging) -> None:
    """Alice leaving news keeps her on sport and keeps Bob on news."""
    alice_box, bob_box = RecordingOutbox("alice"), RecordingOutbox("bob")
    alice = messaging.connect(Uid("alice"), alice_box)
    bob = messaging.connect(Uid("bob"), bob_box)
    messaging.subscribe(alice, NEWS)
    messaging.subscribe(alice, SPORT)
    messaging.subscribe(bob, NEWS)
    messaging.unsubscribe(alice, NEWS)
    news = await messaging.publish(bob, NEWS, "n")
    sport = await messaging.publish(bob, SPORT, "s")
    assert alice_box.messages() == [_at_ms(sport)]
    assert bob_box.messages() == [_at_ms(news)]
    assert alice.topics == (SPORT,)


def test_unsubscribe_from_a_topic_not_held_is_a_no_op(messaging: Messaging, hub: Hub) -> None:
    """Unsubscribing twice, or from a topic never subscribed, changes nothing and raises nothing."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    messaging.subscribe(alice, SPORT)
    messaging.unsubscribe(alice, NEWS)
    messaging.unsubscribe(alice, SPORT)
    messaging.unsubscribe(alice, SPORT)
    assert alice.topics == ()
    assert hub.subscriber_count(SPORT) == 0


async def test_disconnect_stops_delivery_and_broadcasts(messaging: Messaging, hub: Hub) -> None:
    """A disconnected session gets neither topic messages nor broadcasts, and leaves the hub."""
    box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), box)
    messaging.subscribe(alice, NEWS)
    messaging.subscribe(alice, SPORT)
    bob = messaging.connect(Uid("bob"), RecordingOutbox("bob"))
    messaging.disconnect(alice)
    await messaging.publish(bob, NEWS, "n")
    await messaging.publish(bob, SPORT, "s")
    hub.broadcast(b"tick")
    assert box.frames == []
    assert hub.connection_count == 1
    assert (hub.subscriber_count(NEWS), hub.subscriber_count(SPORT)) == (0, 0)
    assert alice.topics == ()


async def test_subscribe_is_idempotent(messaging: Messaging, hub: Hub) -> None:
    """Subscribing twice to a topic holds it once and delivers each message once."""
    box = RecordingOutbox("alice")
    alice = messaging.connect(Uid("alice"), box)
    assert messaging.subscribe(alice, NEWS) == messaging.subscribe(alice, NEWS)
    message = await messaging.publish(alice, NEWS, "once")
    assert box.messages() == [_at_ms(message)]
    assert alice.topics == (NEWS,)
    assert hub.subscriber_count(NEWS) == 1


def test_subscribing_past_max_topics_raises_too_many_topics(messaging: Messaging, hub: Hub) -> None:
    """The topic after the max_topics-th raises TooManyTopics and is not subscribed."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    held = tuple(Topic(f"t{i}") for i in range(MAX_TOPICS))
    for topic in held:
        messaging.subscribe(alice, topic)
    with pytest.raises(TooManyTopics, match=str(MAX_TOPICS)):
        messaging.subscribe(alice, Topic("one-too-many"))
    assert alice.topics == held
    assert hub.subscriber_count(Topic("one-too-many")) == 0


def test_at_max_topics_resubscribing_a_held_topic_is_allowed(messaging: Messaging) -> None:
    """Idempotence wins over the limit: a held topic can be subscribed again at the limit."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    for i in range(MAX_TOPICS):
        messaging.subscribe(alice, Topic(f"t{i}"))
    assert messaging.subscribe(alice, Topic("t0")) == Subscription(Uid("alice"), Topic("t0"))


def test_unsubscribing_frees_room_under_max_topics(messaging: Messaging) -> None:
    """After leaving a topic at the limit, the session may subscribe to another."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    for i in range(MAX_TOPICS):
        messaging.subscribe(alice, Topic(f"t{i}"))
    messaging.unsubscribe(alice, Topic("t1"))
    messaging.subscribe(alice, Topic("t9"))
    assert alice.topics == (Topic("t0"), Topic("t2"), Topic("t9"))


def test_max_topics_is_per_session(messaging: Messaging) -> None:
    """One session at the limit does not limit another session."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    bob = messaging.connect(Uid("bob"), RecordingOutbox())
    for i in range(MAX_TOPICS):
        messaging.subscribe(alice, Topic(f"t{i}"))
    for i in range(MAX_TOPICS):
        messaging.subscribe(bob, Topic(f"t{i}"))
    assert len(bob.topics) == MAX_TOPICS


async def test_every_subscriber_gets_the_same_frame_encoded_once(
    messaging: Messaging, render: CountingRender, hub: Hub
) -> None:
    """A message to three subscribers is rendered once and the same bytes object goes to each."""
    boxes = [RecordingOutbox(f"s{i}") for i in range(3)]
    for i, box in enumerate(boxes):
        messaging.subscribe(messaging.connect(Uid(f"s{i}"), box), NEWS)
    await messaging.publish(messaging.connect(Uid("pub"), RecordingOutbox()), NEWS, "hi")
    assert render.calls == 1
    assert all(len(box.frames) == 1 for box in boxes)
    assert boxes[1].frames[0] is boxes[0].frames[0]
    assert boxes[2].frames[0] is boxes[0].frames[0]
    assert hub.deliveries == 3


async def test_a_message_without_local_subscribers_is_not_encoded(
    messaging: Messaging, render: CountingRender, hub: Hub
) -> None:
    """Nobody on the topic here: the message is not rendered and counts no delivery."""
    alice = messaging.connect(Uid("alice"), RecordingOutbox())
    messaging.subscribe(alice, SPORT)
    await messaging.publish(alice, NEWS, "hi")
    assert render.calls == 0
    assert hub.deliveries == 0


async def test_order_is_the_same_for_every_subscriber(messaging: Messaging) -> None:
    """Messages from several publishers reach every subscriber in the one publish order."""
    boxes = [RecordingOutbox(f"s{i}") for i in range(4)]
    sessions = [messaging.connect(Uid(f"s{i}"), box) for i, box in enumerate(boxes)]
    for session in sessions:
        messaging.subscribe(session, NEWS)
    published = [
        _at_ms(await messaging.publish(sessions[i % len(sessions)], NEWS, f"m{i}")) for i in range(20)
    ]
    for box in boxes:
        assert box.messages() == published


def test_broadcast_reaches_every_connected_outbox(messaging: Messaging, hub: Hub) -> None:
    """A broadcast frame reaches every connection, subscribed or not, and not the disconnected ones."""
    boxes = [RecordingOutbox(f"c{i}") for i in range(3)]
    sessions = [messaging.connect(Uid(f"c{i}"), box) for i, box in enumerate(boxes)]
    messaging.subscribe(sessions[0], NEWS)
    gone = RecordingOutbox("gone")
    messaging.disconnect(messaging.connect(Uid("gone"), gone))
    frame = codec.time_frame(SteppingClock().now())
    hub.broadcast(frame)
    assert [box.frames for box in boxes] == [[frame]] * 3
    assert boxes[0].frames[0] is frame
    assert gone.frames == []


async def test_two_servers_on_one_broker_deliver_to_each_others_subscribers(broker: MemoryBroker) -> None:
    """A message published on one server reaches subscribers attached through another server."""
    servers = [
        Messaging(broker=broker, hub=Hub(render=codec.message_frame), clock=SteppingClock(), max_topics=5)
        for _ in range(2)
    ]
    box = RecordingOutbox("alice")
    alice = servers[1].connect(Uid("alice"), box)
    servers[1].subscribe(alice, NEWS)
    async with broker.attach(servers[0].deliver), broker.attach(servers[1].deliver):
        message = await servers[0].publish(servers[0].connect(Uid("bob"), RecordingOutbox()), NEWS, "hi")
    assert box.messages() == [_at_ms(message)]


async def test_an_attached_deliver_callback_is_detached_on_exit(broker: MemoryBroker) -> None:
    """`async with broker.attach(deliver)` delivers inside the block and nothing after it."""
    received: list[Message] = []
    inside = Message.create(NEWS, Uid("alice"), "inside", SteppingClock().now())
    after = Message.create(NEWS, Uid("alice"), "after", SteppingClock().now())
    async with broker.attach(received.append):
        await broker.publish(inside)
    await broker.publish(after)
    assert received == [inside]


async def test_an_attached_deliver_callback_is_detached_when_the_block_raises(broker: MemoryBroker) -> None:
    """Leaving the attach block by an exception detaches too, and the exception propagates."""
    received: list[Message] = []
    with pytest.raises(RuntimeError, match="server crashed"):
        async with broker.attach(received.append):
            raise RuntimeError("server crashed")
    await broker.publish(Message.create(NEWS, Uid("alice"), "after", SteppingClock().now()))
    assert received == []
