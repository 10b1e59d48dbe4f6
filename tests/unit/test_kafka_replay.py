"""The Kafka broker reads a topic back from Kafka for a recovery: exactly the range, or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.broker import KafkaBroker, partition_of
from minimess.adapters.kafka.envelope import Envelope
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.domain.model import LogState, Message, Position, Topic, Uid
from tests.unit.kafka_fakes import PARTITIONS, TOPIC, FakeKafka

NEWS = Topic("news")
# Another topic whose records share the partition of NEWS.
NEIGHBOUR = next(
    topic
    for topic in (Topic(f"sport-{n}") for n in range(1000))
    if partition_of(topic, PARTITIONS) == partition_of(NEWS, PARTITIONS)
)
PROBE = 0.02


@pytest.fixture
def kafka() -> Iterator[FakeKafka]:
    fake = FakeKafka()
    yield fake
    assert fake.violations == []


def _broker(kafka: FakeKafka, recovery_limit: int = 100) -> KafkaBroker:
    settings = KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS, recovery_limit=recovery_limit)
    broker = KafkaBroker(settings, "eu-1", kafka, probe_interval=PROBE, retry_interval=PROBE)
    kafka.readiness = broker.is_ready
    return broker


def _record_of(topic: Topic) -> bytes:
    message = Message.create(topic, Uid("carol"), "goal", datetime.now(UTC))
    return envelope.encode(Envelope(message, "eu-2"))


async def _news_log(kafka: FakeKafka, broker: KafkaBroker, delivered: list[Message], count: int) -> LogState:
    """Once `count` records were delivered: where the log of `news` stands on this server."""
    await kafka.until(lambda: len(delivered) >= count, f"{count} delivered")
    log = broker.log(NEWS)
    assert log is not None
    return log


async def test_a_replay_is_the_range_of_the_topic_in_order_passing_over_other_topics(
    kafka: FakeKafka,
) -> None:
    broker = _broker(kafka)
    delivered: list[Message] = []
    async with broker.receiving(delivered.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        partition = partition_of(NEWS, PARTITIONS)
        ids = [kafka.append_message(partition) for _ in range(3)]
        kafka.append(partition, _record_of(NEIGHBOUR), key=NEIGHBOUR.name.encode())
        ids.append(kafka.append_message(partition))
        log = await _news_log(kafka, broker, delivered, 5)
        assert (log.last, log.first) == (4, 0)
        replayed = await broker.replay(NEWS, Position(log.epoch, 0), log.last)
        tail = await broker.replay(NEWS, Position(log.epoch, 3), log.last)
        nothing = await broker.replay(NEWS, Position(log.epoch, 4), log.last)
    assert replayed is not None
    assert [(m.id, m.offset) for m in replayed] == [(ids[1], 1), (ids[2], 2), (ids[3], 4)]
    assert [m.position for m in replayed] == [m.position for m in delivered if m.topic == NEWS][1:]
    assert tail is not None
    assert [m.id for m in tail] == [ids[3]]
    assert nothing == ()
    assert broker.counters()["replays"] == 2


async def test_a_replay_is_refused_for_another_epoch_past_the_limit_or_over_deleted_records(
    kafka: FakeKafka,
) -> None:
    broker = _broker(kafka, recovery_limit=3)
    delivered: list[Message] = []
    async with broker.receiving(delivered.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        partition = partition_of(NEWS, PARTITIONS)
        for _ in range(5):
            kafka.append_message(partition)
        log = await _news_log(kafka, broker, delivered, 5)
        assert await broker.replay(NEWS, Position("another-epoch.0", 0), log.last) is None
        assert await broker.replay(NEWS, Position(log.epoch, 0), log.last) is None  # 4 records > 3
        kafka.delete_before(partition, 3)
        assert await broker.replay(NEWS, Position(log.epoch, 1), log.last) is None  # 2 is gone
        kept = await broker.replay(NEWS, Position(log.epoch, 2), log.last)
    assert kept is not None
    assert [m.offset for m in kept] == [3, 4]


async def test_no_replay_and_no_log_before_the_broker_knows_the_topic(kafka: FakeKafka) -> None:
    broker = _broker(kafka)
    assert broker.log(NEWS) is None
    assert await broker.replay(NEWS, Position("x.0", 0), 5) is None
    assert not await broker.caught_up(NEWS, 0)


async def test_a_record_whose_key_or_partition_is_not_its_topics_is_skipped_as_invalid(
    kafka: FakeKafka,
) -> None:
    """Its offset would count in another topic's epoch: neither delivered nor replayed."""
    broker = _broker(kafka)
    delivered: list[Message] = []
    async with broker.receiving(delivered.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        partition = partition_of(NEWS, PARTITIONS)
        elsewhere = (partition + 1) % PARTITIONS
        kafka.append(partition, _record_of(NEWS), key=b"not-news")
        kafka.append(elsewhere, _record_of(NEWS), key=b"news")
        kafka.append(partition, _record_of(NEIGHBOUR), key=b"news")
        good = kafka.append_message(partition)
        await kafka.until(lambda: len(delivered) >= 1, "1 delivered")
        log = broker.log(NEWS)
        assert log is not None
        replayed = await broker.replay(NEWS, Position(log.epoch, -1), log.last)
    assert [m.id for m in delivered] == [good]
    assert replayed is not None
    assert [m.id for m in replayed] == [good]
    assert broker.counters()["invalid_records"] >= 3


async def test_a_topic_recreated_under_a_running_server_is_read_anew_in_a_new_epoch(kafka: FakeKafka) -> None:
    """The probe sees the new id: the clients are made again and offsets count from the new start."""
    broker = _broker(kafka)
    delivered: list[Message] = []
    async with broker.receiving(delivered.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        partition = partition_of(NEWS, PARTITIONS)
        for _ in range(3):
            kafka.append_message(partition)
        old = await _news_log(kafka, broker, delivered, 3)
        kafka.delete_topic()
        await kafka.until(lambda: not broker.is_ready(), "the broker sees the topic gone")
        await kafka.create_topic(KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS), "elsewhere")
        await kafka.until(
            lambda: (log := broker.log(NEWS)) is not None and log.epoch != old.epoch and broker.is_ready(),
            "a log in the new epoch",
        )
        new = kafka.append_message(partition)
        await kafka.until(lambda: len(delivered) >= 4, "the new topic's first record")
        log = broker.log(NEWS)
    assert log is not None
    assert (log.last, log.first) == (0, 0)
    assert (delivered[-1].id, delivered[-1].position) == (new, Position(log.epoch, 0))
