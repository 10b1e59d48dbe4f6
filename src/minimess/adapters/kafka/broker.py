"""The Kafka broker: every server publishes to one Kafka topic and reads all of it back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.envelope import Envelope, EnvelopeError
from minimess.app.task_groups import until_first_ends
from minimess.domain.errors import BrokerUnavailable
from minimess.domain.model import Message
from minimess.domain.ports import Deliver

log = structlog.get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36
LOG_APPEND_TIME = 1


class ConsumerStalled(Exception):
    """The consumer lags behind the end of a partition and has not moved for a whole probe."""


@attrs.frozen
class KafkaConfig:
    """Where the bus is and how this server uses it."""

    bootstrap: str
    topic: str
    partitions: int
    publish_timeout: float
    node_id: str
    probe_interval: float = 1.0
    retry_interval: float = 1.0

    @property
    def client_id(self) -> str:
        return f"minimess-{self.node_id}"


class KafkaBroker:
    """The bus between servers on Apache Kafka, behind the same Broker port as the memory one.

    Records are keyed by minimess topic, so one topic's messages stay in one partition, in one
    order. There is no consumer group: every server reads every partition, and the origin server
    gets its own publishes back the same way, so everybody sees one order. Each `receiving` is one
    reader of the bus (a server receives once; tests receive twice to play two servers).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        publish_timeout: float,
        node_id: str,
        probe_interval: float = 1.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._config = KafkaConfig(
            bootstrap, topic, partitions, publish_timeout, node_id, probe_interval, retry_interval
        )
        self._readers: list[_Reader] = []
        self.undecodable_records = 0
        self.late_records = 0

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        reader = _Reader(self._config, deliver, self)
        self._readers.append(reader)
        supervisor = asyncio.create_task(reader.supervise())
        try:
            yield
        finally:
            self._readers.remove(reader)
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    async def publish(self, message: Message) -> None:
        producer = next((r.producer for r in self._readers if r.ready and r.producer), None)
        if producer is None:
            raise BrokerUnavailable("Kafka is not reachable")
        config = self._config
        value = envelope.encode(Envelope(message=message, origin_node=config.node_id))
        try:
            async with asyncio.timeout(config.publish_timeout):
                delivery = await producer.send(config.topic, value=value, key=message.topic.name.encode())
                await delivery
        except TimeoutError:
            raise BrokerUnavailable(
                f"Kafka did not acknowledge within {config.publish_timeout:g} s"
            ) from None
        except KafkaError as error:
            raise BrokerUnavailable(f"Kafka refused the message: {error}") from None

    def is_ready(self) -> bool:
        # Every reader, not just one: a server (one reader) is ready when its reader is, and
        # with several, ready means each of them receives what is published now.
        return bool(self._readers) and all(reader.ready for reader in self._readers)

    def counters(self) -> Mapping[str, int]:
        return {"undecodable_records": self.undecodable_records, "late_records": self.late_records}


class _Reader:
    """One reader of the bus, with the producer it publishes through, kept alive across outages.

    A supervisor (re)creates the Kafka clients until they work; readiness follows a metadata
    probe every probe interval; a consumer that lags and stops moving is recreated where it
    stopped, so nothing is skipped. Reading starts when the reader is made, not at the moment the
    consumer first reaches Kafka, so a message published after that is never missed.
    """

    def __init__(self, config: KafkaConfig, deliver: Deliver, broker: KafkaBroker) -> None:
        self._config = config
        self._deliver = deliver
        self._broker = broker
        # Kafka timestamps are wall-clock milliseconds, truncated; rounding up could skip a record
        # appended within the same millisecond.
        self._since_ms = int(time.time() * 1000)
        self.producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = False
        # Next offset to read per partition, kept across consumer restarts.
        self._positions: dict[TopicPartition, int] = {}

    async def supervise(self) -> None:
        while True:
            try:
                await self._start_clients()
                await self._consume_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("kafka_unavailable", bootstrap=self._config.bootstrap, error=repr(error))
            finally:
                self.ready = False
                await self._stop_clients()
            await asyncio.sleep(self._config.retry_interval)

    async def _start_clients(self) -> None:
        config = self._config
        await self._ensure_topic()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap,
            client_id=config.client_id,
            acks="all",
            enable_idempotence=True,
            # Send at once: a chat message should not wait for a batch to fill.
            linger_ms=0,
            request_timeout_ms=round(config.publish_timeout * 1000),
        )
        await self.producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=config.bootstrap,
            client_id=config.client_id,
            group_id=None,
            enable_auto_commit=False,
            # A saved position that retention has deleted resumes at the oldest record kept.
            auto_offset_reset="earliest",
            # A fetch returns as soon as one record is there; this only bounds an idle long poll.
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        await self._assign_all_partitions(self._consumer, self.producer)
        self.ready = True
        log.info("kafka_connected", bootstrap=config.bootstrap, topic=config.topic)

    async def _ensure_topic(self) -> None:
        config = self._config
        admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap, client_id=config.client_id)
        try:
            await admin.start()
            new_topic = NewTopic(
                config.topic,
                num_partitions=config.partitions,
                replication_factor=1,
                # Kafka stamps each record when it appends it, which tells every server alike
                # whether the record came too late for its publisher (see _is_late).
                topic_configs={"message.timestamp.type": "LogAppendTime"},
            )
            response = await admin.create_topics([new_topic])
            for _name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {config.topic}: error code {code}")
        finally:
            await admin.close()

    async def _assign_all_partitions(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        # The producer's metadata is the one that waits for the topic to be known.
        numbers = await producer.partitions_for(self._config.topic)
        if not numbers:
            raise KafkaError(f"topic {self._config.topic} has no partitions yet")
        partitions = [TopicPartition(self._config.topic, number) for number in sorted(numbers)]
        new = [partition for partition in partitions if partition not in self._positions]
        if new:
            # The first time: the first record appended at or after the reader was made, if any.
            # The end is asked first: a record appended between the two answers is then found
            # by time, or lies at or after that end; asked the other way round it could be
            # neither (a lookup by time only sees records Kafka has already committed).
            ends = await consumer.end_offsets(new)
            found = await consumer.offsets_for_times(dict.fromkeys(new, self._since_ms))
            for partition in new:
                hit = found.get(partition)
                self._positions[partition] = hit.offset if hit is not None else ends[partition]
        # Assign and seek with no await between: the consumer must never get the chance to
        # reset a fresh assignment to the end on its own, which would skip records.
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, self._positions[partition])

    async def _consume_and_watch(self) -> None:
        """Deliver records, and probe Kafka beside it; return or raise when either fails.

        The probe runs in its own task so that its round trips never delay a delivery.
        """
        for task in await until_first_ends(self._consume(), self._watch()):
            task.result()

    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for partition, records in batches.items():
                for record in records:
                    self._positions[partition] = record.offset + 1
                    self._deliver_record(record)

    async def _watch(self) -> None:
        """Every probe interval: is Kafka reachable (readiness), and does the consumer move?

        Raises ConsumerStalled when a partition lagged at the last probe and its position has
        not moved since.
        """
        assert self.producer is not None
        assert self._consumer is not None
        producer, consumer = self.producer, self._consumer
        lagging: dict[TopicPartition, int] = {}
        while True:
            await asyncio.sleep(self._config.probe_interval)
            try:
                async with asyncio.timeout(self._config.probe_interval * 2):
                    await producer.client.fetch_all_metadata()
                    ends = await consumer.end_offsets(list(self._positions))
                    # The consumer may have moved past records it never returned (deleted by
                    # retention); its own position is then the one to compare with the end.
                    for partition in ends:
                        position = await consumer.position(partition)
                        self._positions[partition] = max(self._positions[partition], position)
            except (KafkaError, TimeoutError) as error:
                if self.ready:
                    log.warning("kafka_unreachable", error=repr(error))
                self.ready = False
                lagging = {}
                continue
            if not self.ready:
                log.info("kafka_reachable_again")
            self.ready = True
            now_lagging = {p: self._positions[p] for p, end in ends.items() if end > self._positions[p]}
            if any(lagging.get(p) == position for p, position in now_lagging.items()):
                raise ConsumerStalled("a lagging partition made no progress between two probes")
            lagging = now_lagging

    def _deliver_record(self, record: Any) -> None:
        try:
            message = envelope.decode(record.value or b"").message
        except EnvelopeError as error:
            self._broker.undecodable_records += 1
            log.warning(
                "kafka_record_skipped", partition=record.partition, offset=record.offset, reason=str(error)
            )
            return
        if self._is_late(record, message):
            self._broker.late_records += 1
            log.info("kafka_record_late", partition=record.partition, offset=record.offset, id=message.id)
            return
        try:
            self._deliver(message)
        except Exception:
            # A bug in delivery must not be taken for a Kafka outage and restart the clients.
            log.exception("delivery_failed", message_id=message.id)

    def _is_late(self, record: Any, message: Message) -> bool:
        """Whether Kafka appended the record after its publisher's deadline had passed.

        The publisher then told its client `broker_unavailable`, but the producer may still have
        written the record once Kafka came back. Every server compares the same two timestamps
        (Kafka's append time and the publish time in the envelope), so all drop it alike.
        """
        if record.timestamp_type != LOG_APPEND_TIME:
            return False
        published_ms = round(message.timestamp.timestamp() * 1000)
        return bool(record.timestamp - published_ms > self._config.publish_timeout * 1000)

    async def _stop_clients(self) -> None:
        producer, consumer = self.producer, self._consumer
        self.producer = self._consumer = None
        for client in (producer, consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._config.publish_timeout):
                        await client.stop()
