"""The unit tests' fake Kafka clients and aiokafka's on a real Kafka answer the broker's calls alike."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import Awaitable, Callable

import attrs
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from minimess.adapters.kafka.clients import (
    AiokafkaClients,
    Consumer,
    KafkaClients,
    Producer,
    Record,
)
from minimess.adapters.kafka.settings import KafkaSettings
from tests.timeouts import scaled
from tests.unit.kafka_fakes import FakeKafka, now_ms

PARTITIONS = 3
CLIENT_ID = "minimess-contract"
# How Kafka's tools print a topic id: its 16 bytes in URL-safe base64 without the padding.
TOPIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")


@attrs.frozen
class Bus:
    """One side of the comparison: clients, the settings of a fresh topic, retention by hand, and
    the deletion of the topic."""

    clients: KafkaClients
    settings: KafkaSettings
    delete_before: Callable[[TopicPartition, int], Awaitable[None]]
    delete_topic: Callable[[], Awaitable[None]]


@pytest.fixture(params=["fake", pytest.param("aiokafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest) -> Bus:
    topic = f"minimess-test-{uuid.uuid4().hex}"
    if request.param == "fake":
        fake = FakeKafka(topic, PARTITIONS)

        async def forget(partition: TopicPartition, offset: int) -> None:
            fake.delete_before(partition.partition, offset)

        async def delete_fake_topic() -> None:
            fake.delete_topic()

        settings = KafkaSettings(kafka_topic=topic, kafka_partitions=PARTITIONS)
        return Bus(fake, settings, forget, delete_fake_topic)
    bootstrap = request.getfixturevalue("kafka").bootstrap

    async def delete(partition: TopicPartition, offset: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_records({partition: RecordsToDelete(before_offset=offset)})
        finally:
            await admin.close()

    async def delete_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            response = await admin.delete_topics([topic])
        finally:
            await admin.close()
        assert [tuple(answer) for answer in response.topic_error_codes] == [(topic, 0)]

    settings = KafkaSettings(kafka_bootstrap=bootstrap, kafka_topic=topic, kafka_partitions=PARTITIONS)
    return Bus(AiokafkaClients(), settings, delete, delete_topic)


async def _read(consumer: Consumer, count: int) -> list[Record]:
    """The next `count` records, as the broker polls for them."""
    records: list[Record] = []
    async with asyncio.timeout(scaled(10)):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
    return records


async def test_the_clients_answer_the_calls_of_the_broker_alike(bus: Bus) -> None:
    """Topic creation (twice), partitions, the metadata probe, lookups by end and by time, sends keyed
    to one partition, records stamped on append, positions, and a seek into deleted records."""
    clients, settings = bus.clients, bus.settings
    topic = settings.kafka_topic
    await clients.create_topic(settings, CLIENT_ID)
    await clients.create_topic(settings, CLIENT_ID)  # it exists: no error
    producer, consumer = clients.producer(settings, CLIENT_ID), clients.consumer(settings, CLIENT_ID)
    await producer.start()
    await consumer.start()
    try:
        assert await producer.partitions_for(topic) == set(range(PARTITIONS))
        await producer.client.fetch_all_metadata()
        partitions = [TopicPartition(topic, number) for number in range(PARTITIONS)]
        since = now_ms()
        assert await consumer.end_offsets(partitions) == dict.fromkeys(partitions, 0)
        assert await consumer.offsets_for_times(dict.fromkeys(partitions, since)) == dict.fromkeys(partitions)
        sent = [
            await (await producer.send(topic, value=v, key=b"news", partition=1))
            for v in (b"r0", b"r1", b"r2")
        ]
        assert [record.offset for record in sent] == [0, 1, 2]
        ends = await consumer.end_offsets(partitions)
        (written,) = [partition for partition, end in ends.items() if end]  # the partition sent to
        assert ends[written] == 3
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since))
        assert {partition: hit and hit.offset for partition, hit in found.items()} == {
            partition: 0 if partition == written else None for partition in partitions
        }
        assert (await consumer.offsets_for_times({written: now_ms() + 60_000}))[written] is None
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, 0)
        records = await _read(consumer, 3)
        assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
            (written.partition, offset, b"news", b"r%d" % offset) for offset in range(3)
        ]
        assert all(since <= r.timestamp <= now_ms() for r in records)
        assert await consumer.position(written) == 3
        # Retention deleted the first two: a position among them resumes at the oldest record kept.
        await bus.delete_before(written, 2)
        consumer.seek(written, 0)
        assert [(r.offset, r.value) for r in await _read(consumer, 1)] == [(2, b"r2")]
        assert await consumer.position(written) == 3
    finally:
        await producer.stop()
        await consumer.stop()


def _is_topic_id(text: str) -> bool:
    return TOPIC_ID.fullmatch(text) is not None and base64.urlsafe_b64decode(text + "==") != bytes(16)


async def _created_anew(bus: Bus, producer: Producer, old_id: str) -> str:
    """Create the deleted topic again; return its id once a broker serves the new incarnation.

    Kafka answers DeleteTopics once the deletion is decided, not once every broker has applied it:
    for a while a creation may still be answered "already exists" (which create_topic takes for
    success, as it should for a live topic) and the metadata may still show the old incarnation,
    or no topic at all. So this creates and asks again while Kafka's answers show the old id or no
    topic; each round waits for Kafka's two answers, and the whole is bounded.
    """
    topic, answers = bus.settings.kafka_topic, []
    try:
        async with asyncio.timeout(scaled(10)):
            while True:
                await bus.clients.create_topic(bus.settings, CLIENT_ID)
                try:
                    topic_id = await bus.clients.topic_id(producer, topic)
                except UnknownTopicOrPartitionError as error:
                    answers.append(repr(error))
                    continue
                if topic_id != old_id:
                    return topic_id
                answers.append(topic_id)
    except TimeoutError:
        pytest.fail(f"{topic} not created anew within {scaled(10)} s; Kafka kept answering {answers[-3:]}")


async def test_a_topic_id_names_the_topics_incarnation(bus: Bus) -> None:
    """Every producer gets the same id for a topic, spelled as Kafka's tools print it; a topic that
    does not exist has none; a topic deleted and created again has another."""
    clients, settings = bus.clients, bus.settings
    topic = settings.kafka_topic
    await clients.create_topic(settings, CLIENT_ID)
    first, second = clients.producer(settings, CLIENT_ID), clients.producer(settings, CLIENT_ID)
    await first.start()
    await second.start()
    try:
        # Kafka answers CreateTopics before its broker serves the topic: this waits until it does.
        assert await first.partitions_for(topic) == set(range(PARTITIONS))
        topic_id = await clients.topic_id(first, topic)
        assert _is_topic_id(topic_id), topic_id
        assert await clients.topic_id(first, topic) == topic_id
        assert await clients.topic_id(second, topic) == topic_id
        with pytest.raises(KafkaError):
            await clients.topic_id(first, f"{topic}-never-created")

        await bus.delete_topic()
        recreated = await _created_anew(bus, first, topic_id)
        assert _is_topic_id(recreated), recreated
        assert await clients.topic_id(second, topic) == recreated
    finally:
        await first.stop()
        await second.stop()
