"""The Kafka broker reads only what the server needs: partitions assigned and records decoded by interest."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest
from aiokafka import TopicPartition

from minimess.adapters.kafka.broker import KafkaBroker, epoch_of, partition_of
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.app.history import History, HistoryLimits
from minimess.app.interest import Interest
from minimess.app.messaging import MessagingService
from minimess.domain.model import Position, Topic, Uid
from tests.unit.kafka_fakes import PARTITIONS, TOPIC, Behaviour, FakeConsumer, FakeKafka
from tests.unit.test_messaging import FixedClock, RecordingOutbox, RecordingRenderer
from tests.unit.test_recovery import within

NEWS = Topic("news")
NEWS_PARTITION = partition_of(NEWS, PARTITIONS)
# Another topic in the partition of NEWS, and one in another partition.
NEIGHBOUR = next(
    topic
    for topic in (Topic(f"sport-{n}") for n in range(1000))
    if partition_of(topic, PARTITIONS) == NEWS_PARTITION
)
ELSEWHERE = next(
    topic
    for topic in (Topic(f"weather-{n}") for n in range(1000))
    if partition_of(topic, PARTITIONS) != NEWS_PARTITION
)
PROBE = 0.02
LIMITS = HistoryLimits(per_topic=100, ttl=1e9, total_bytes=2**30)


@attrs.frozen
class Server:
    kafka: FakeKafka
    broker: KafkaBroker
    service: MessagingService

    @property
    def consumer(self) -> FakeConsumer:
        return self.kafka.consumers[-1]

    def assigned(self) -> list[int]:
        return sorted(partition.partition for partition in self.consumer.assigned)


@pytest.fixture
def kafka() -> Iterator[FakeKafka]:
    fake = FakeKafka()
    yield fake
    assert fake.violations == []


@pytest.fixture
async def server(kafka: FakeKafka) -> AsyncIterator[Server]:
    async with serving(kafka) as running:
        yield running


@contextlib.asynccontextmanager
async def serving(kafka: FakeKafka) -> AsyncIterator[Server]:
    """A server on `kafka`, its broker ready."""
    interest = Interest(after_publish=LIMITS.ttl)
    settings = KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS)
    broker = KafkaBroker(
        settings, "eu-1", kafka, probe_interval=PROBE, retry_interval=PROBE, interest=interest
    )
    kafka.readiness = broker.is_ready
    service = MessagingService(
        broker,
        broker,
        RecordingRenderer(),
        FixedClock(),
        max_topics=3,
        tick=0,
        history=History(LIMITS),
        interest=interest,
    )
    async with service.running():
        await kafka.until(broker.is_ready, "the broker is ready")
        yield Server(kafka, broker, service)


def _append_other(kafka: FakeKafka, topic: Topic, value: bytes) -> None:
    kafka.append(partition_of(topic, PARTITIONS), value, key=topic.name.encode())


async def test_a_server_reads_only_partitions_of_needed_topics_and_decodes_only_their_records(
    server: Server,
) -> None:
    kafka = server.kafka
    assert server.assigned() == []
    outbox = RecordingOutbox()
    alice = server.service.connect(Uid("alice"), outbox)
    server.service.subscribe(alice, NEWS)
    assert server.assigned() == [NEWS_PARTITION]
    # Not even read as an envelope: it would count as undecodable otherwise.
    _append_other(kafka, NEIGHBOUR, b"\xff\x00not an envelope")
    _append_other(kafka, ELSEWHERE, b"\xff\x00not an envelope")
    kafka.append_message(NEWS_PARTITION, body="m1")
    await kafka.until(lambda: outbox.frames == [b"m1"], "news delivered")
    counters = server.broker.counters()
    assert (counters["unneeded_records"], counters["undecodable_records"]) == (1, 0)
    assert server.broker.lag().keys() == {NEWS_PARTITION}
    server.service.unsubscribe(alice, NEWS)
    await kafka.until(lambda: server.assigned() == [], "the partition let go at a probe")


async def test_a_subscriber_joining_a_passed_over_topic_recovers_what_came_before_from_kafka_once_in_order(
    server: Server,
) -> None:
    """Its partition read for another topic, or not at all: either way the history starts at the join."""
    kafka, service = server.kafka, server.service
    neighbour = service.connect(Uid("nina"), RecordingOutbox())
    service.subscribe(neighbour, NEIGHBOUR)  # the partition is read, news passed over
    for n in range(3):
        kafka.append_message(NEWS_PARTITION, body=f"m{n}")
    await kafka.until(lambda: server.broker.counters()["unneeded_records"] == 3, "news passed over")
    alice_box = RecordingOutbox()
    alice = service.connect(Uid("alice"), alice_box)
    joined = service.subscribe(alice, NEWS)
    assert joined.position == Position(epoch_of(kafka.incarnation_id, NEWS_PARTITION), 2)
    for n in range(3, 5):
        kafka.append_message(NEWS_PARTITION, body=f"m{n}")
    await kafka.until(lambda: alice_box.frames == [b"m3", b"m4"], "alice got the live ones")
    service.disconnect(alice)
    back_box = RecordingOutbox()
    back = service.connect(Uid("alice"), back_box)
    since = Position(epoch_of(kafka.incarnation_id, NEWS_PARTITION), 0)
    subscribed = await within(service.subscribe_since(back, NEWS, since))
    assert subscribed.recovered is True
    assert list(subscribed.replay) == [b"m1", b"m2", b"m3", b"m4"]
    assert server.broker.counters()["replays"] == 1
    kafka.append_message(NEWS_PARTITION, body="m5")
    await kafka.until(lambda: back_box.frames == [b"m5"], "the next one live, once")


async def test_a_subscriber_with_a_position_on_a_partition_never_read_here_is_recovered_from_kafka(
    server: Server,
) -> None:
    kafka, service = server.kafka, server.service
    for n in range(3):
        kafka.append_message(NEWS_PARTITION, body=f"m{n}")
    await kafka.probes_pass(2)  # the ends are known; the partition is not read
    log = server.broker.log(NEWS)
    assert log is not None
    assert (log.last, log.first) == (2, 3)
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    since = Position(epoch_of(kafka.incarnation_id, NEWS_PARTITION), 0)
    subscribed = await within(service.subscribe_since(alice, NEWS, since))
    assert (subscribed.recovered, list(subscribed.replay)) == (True, [b"m1", b"m2"])
    assert server.assigned() == [NEWS_PARTITION]
    kafka.append_message(NEWS_PARTITION, body="m3")
    await kafka.until(lambda: outbox.frames == [b"m3"], "the next one live, once")


async def test_a_retried_publish_with_no_local_subscriber_is_acked_as_its_original(server: Server) -> None:
    kafka, service = server.kafka, server.service
    bob = service.connect(Uid("bob"), RecordingOutbox())
    first = await within(service.publish(bob, NEWS, "hello", message_id="retry-me-00000001"))
    await kafka.until(lambda: service.counters().history_messages == 1, "read back into the history")
    again = await within(service.publish(bob, NEWS, "hello", message_id="retry-me-00000001"))
    assert again.position == first.position
    assert len(kafka.records()) == 1


async def test_an_existing_subscriber_gets_every_message_once_while_the_assignment_changes(
    server: Server,
) -> None:
    kafka, service = server.kafka, server.service
    outbox = RecordingOutbox()
    alice = service.connect(Uid("alice"), outbox)
    service.subscribe(alice, NEWS)
    churn = service.connect(Uid("carol"), RecordingOutbox())
    expected = []
    for n in range(40):
        kafka.append_message(NEWS_PARTITION, body=f"m{n}")
        expected.append(f"m{n}".encode())
        if n % 2:
            service.subscribe(churn, ELSEWHERE)  # assigns another partition
        else:
            service.unsubscribe(churn, ELSEWHERE)
            await kafka.probes_pass(1)  # and lets it go
    await kafka.until(lambda: len(outbox.frames) >= len(expected), "every one delivered")
    assert outbox.frames == expected
    assert server.consumer is server.kafka.consumers[0]  # one consumer throughout
    assert TopicPartition(TOPIC, NEWS_PARTITION) in server.consumer.assigned


async def test_a_retry_after_recovering_its_original_on_a_server_that_passed_it_over_is_acked_as_it(
    server: Server,
) -> None:
    """The original went by while nobody here needed its topic: read back, it is still the original."""
    kafka, service = server.kafka, server.service
    epoch = epoch_of(kafka.incarnation_id, NEWS_PARTITION)
    kafka.append_message(NEWS_PARTITION, body="m0")
    kafka.append_message(NEWS_PARTITION, body="hello", message_id="retry-me-00000002")
    await kafka.probes_pass(2)
    bob = service.connect(Uid("bob"), RecordingOutbox())
    subscribed = await within(service.subscribe_since(bob, NEWS, Position(epoch, 0)))
    assert (subscribed.recovered, list(subscribed.replay)) == (True, [b"hello"])
    again = await within(service.publish(bob, NEWS, "hello", message_id="retry-me-00000002"))
    assert again.position == Position(epoch, 1)
    assert len(kafka.records()) == 2


async def test_a_recovery_keeps_an_original_this_server_passed_over_though_it_holds_a_later_copy(
    server: Server,
) -> None:
    """A retry sent here before its original was read back puts a copy on the bus; a recovery still
    gives the original, once, and never drops both."""
    kafka, service = server.kafka, server.service
    epoch = epoch_of(kafka.incarnation_id, NEWS_PARTITION)
    kafka.append_message(NEWS_PARTITION, body="m0")
    kafka.append_message(NEWS_PARTITION, body="hello", message_id="retry-me-00000003")
    await kafka.probes_pass(2)
    bob = service.connect(Uid("bob"), RecordingOutbox())
    copy = await within(service.publish(bob, NEWS, "hello", message_id="retry-me-00000003"))
    assert copy.position == Position(epoch, 2)
    await kafka.until(lambda: service.counters().history_messages == 1, "the copy read back live")
    carol_box = RecordingOutbox()
    carol = service.connect(Uid("carol"), carol_box)
    subscribed = await within(service.subscribe_since(carol, NEWS, Position(epoch, 0)))
    assert (subscribed.recovered, list(subscribed.replay)) == (True, [b"hello"])
    kafka.append_message(NEWS_PARTITION, body="m3")
    await kafka.until(lambda: carol_box.frames == [b"m3"], "the next one live, once")


async def test_a_retry_that_kafka_acked_before_its_original_was_read_here_is_acked_as_the_original(
    kafka: FakeKafka,
) -> None:
    """Its original reached the bus first (through another server) but was not read here yet when
    Kafka acknowledged the retry's copy: the ack waits until the copy is read back, by when the
    history holds the original, and carries the position subscribers see."""
    kafka.behaviours = [Behaviour(one_per_probe=True)]  # a consumer that reads behind the acks
    async with serving(kafka) as server:
        service = server.service
        epoch = epoch_of(kafka.incarnation_id, NEWS_PARTITION)
        outbox = RecordingOutbox()
        bob = service.connect(Uid("bob"), outbox)
        service.subscribe(bob, NEWS)
        kafka.append_message(NEWS_PARTITION, body="hello", message_id="retry-me-00000004")
        again = await within(service.publish(bob, NEWS, "hello", message_id="retry-me-00000004"))
        assert again.position == Position(epoch, 0)
        assert len(kafka.records()) == 2, "the copy reached the bus"
        assert outbox.frames == [b"hello"], "delivered once, before the ack"
        kafka.append_message(NEWS_PARTITION, body="next")
        await kafka.until(lambda: outbox.frames == [b"hello", b"next"], "the next one, the copy skipped")
