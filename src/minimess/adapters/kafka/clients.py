"""The Kafka clients the broker uses, made by a factory: aiokafka's, or any that behave alike.

The protocols name only what the broker calls; aiokafka's producer and consumer have these
methods already, so the real factory hands them over as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndTimestamp

from minimess.adapters.kafka import topic_ids
from minimess.adapters.kafka.security import connection_options
from minimess.adapters.kafka.settings import KafkaSettings

TOPIC_ALREADY_EXISTS = 36


class Record(Protocol):
    """A consumed record: where it lies, its key, what it holds, and its time."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


class Cluster(topic_ids.MetadataClient, Protocol):
    """The producer's connection to the cluster: its metadata request is the readiness probe, and it
    sends the request for a topic's id to one of its brokers (`get_random_node`, `send`)."""

    async def fetch_all_metadata(self) -> object: ...


class Sent(Protocol):
    """Where Kafka put an acknowledged record."""

    @property
    def offset(self) -> int: ...


class Producer(Protocol):
    """Sends records; `send` returns once the record is queued, with the acknowledgement to await."""

    @property
    def client(self) -> Cluster: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def partitions_for(self, topic: str) -> set[int] | None: ...
    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> Awaitable[Sent]: ...


class Consumer(Protocol):
    """Reads partitions it is assigned by hand, from where it is told to seek."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    async def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]: ...
    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> Mapping[TopicPartition, OffsetAndTimestamp | None]: ...
    async def position(self, partition: TopicPartition) -> int: ...
    async def getmany(self, timeout_ms: int = 0) -> Mapping[TopicPartition, Sequence[Record]]: ...


class KafkaClients(Protocol):
    """Makes the clients of one reader of the bus; the broker starts and stops them."""

    async def create_topic(self, settings: KafkaSettings, client_id: str) -> None:
        """Create the topic of `settings` unless it exists.

        Raises KafkaError if Kafka cannot be reached or refuses the topic.
        """
        ...

    def producer(self, settings: KafkaSettings, client_id: str) -> Producer:
        """A producer that waits for every replica and sends each record at once."""
        ...

    async def topic_id(self, producer: Producer, topic: str) -> str:
        """The id of the current incarnation of `topic`, asked through a started producer's cluster.

        The same on every server and across restarts; a topic deleted and created again has another.
        Raises KafkaError if the topic is unknown or Kafka cannot be reached.
        """
        ...

    def consumer(self, settings: KafkaSettings, client_id: str) -> Consumer:
        """A consumer without a group; a position retention has deleted resumes at the oldest record kept."""
        ...


class AiokafkaClients:
    """The real clients, aiokafka's, each connecting with the security options of the settings.

    The classes are aiokafka's unless given: a test gives recorders, to see what each client gets.
    """

    def __init__(
        self,
        producer_class: Callable[..., Any] = AIOKafkaProducer,
        consumer_class: Callable[..., Any] = AIOKafkaConsumer,
        admin_class: Callable[..., Any] = AIOKafkaAdminClient,
    ) -> None:
        self._producer_class = producer_class
        self._consumer_class = consumer_class
        self._admin_class = admin_class

    async def create_topic(self, settings: KafkaSettings, client_id: str) -> None:
        admin = self._admin_class(
            bootstrap_servers=settings.kafka_bootstrap, client_id=client_id, **connection_options(settings)
        )
        try:
            await admin.start()
            new_topic = NewTopic(
                settings.kafka_topic,
                num_partitions=settings.kafka_partitions,
                replication_factor=1,
            )
            response = await admin.create_topics([new_topic])
            for _name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {settings.kafka_topic}: error code {code}")
        finally:
            await admin.close()

    def producer(self, settings: KafkaSettings, client_id: str) -> Producer:
        producer: Producer = self._producer_class(
            **connection_options(settings),
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            # Send at once: a chat message should not wait for a batch to fill.
            linger_ms=0,
            request_timeout_ms=round(settings.publish_timeout * 1000),
        )
        return producer

    async def topic_id(self, producer: Producer, topic: str) -> str:
        return await topic_ids.topic_id(producer.client, topic)

    def consumer(self, settings: KafkaSettings, client_id: str) -> Consumer:
        consumer: Consumer = self._consumer_class(
            **connection_options(settings),
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            # A saved position that retention has deleted resumes at the oldest record kept.
            auto_offset_reset="earliest",
            # A fetch returns as soon as one record is there; this only bounds an idle long poll.
            fetch_max_wait_ms=100,
        )
        return consumer
