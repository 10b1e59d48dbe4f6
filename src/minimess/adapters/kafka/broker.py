"""The Kafka broker: every server publishes to one Kafka topic and reads all of it back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.clients import (
    LOG_APPEND_TIME,
    AiokafkaClients,
    Consumer,
    KafkaClients,
    Producer,
    Record,
)
from minimess.adapters.kafka.envelope import Envelope, EnvelopeError
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.app.task_groups import until_first_ends
from minimess.domain.errors import BrokerUnavailable
from minimess.domain.model import Message
from minimess.domain.ports import Deliver

log = structlog.get_logger(__name__)


class ConsumerStalled(Exception):
    """The consumer lags behind the end of a partition and has not moved for a whole probe."""


@attrs.frozen
class _Setup:
    """What every reader of one broker shares: the bus, this server's name, its clients and pace."""

    settings: KafkaSettings
    node_id: str
    clients: KafkaClients
    probe_interval: float
    retry_interval: float

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
        settings: KafkaSettings,
        node_id: str,
        clients: KafkaClients | None = None,
        probe_interval: float = 1.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._setup = _Setup(
            settings,
            node_id,
            AiokafkaClients() if clients is None else clients,
            probe_interval,
            retry_interval,
        )
        self._readers: list[_Reader] = []
        self.undecodable_records = 0
        self.late_records = 0

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        reader = _Reader(self._setup, deliver, self)
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
        settings = self._setup.settings
        value = envelope.encode(Envelope(message=message, origin_node=self._setup.node_id))
        try:
            async with asyncio.timeout(settings.publish_timeout):
                delivery = await producer.send(
                    settings.kafka_topic, value=value, key=message.topic.name.encode()
                )
                await delivery
        except TimeoutError:
            raise BrokerUnavailable(
                f"Kafka did not acknowledge within {settings.publish_timeout:g} s"
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

    def __init__(self, setup: _Setup, deliver: Deliver, broker: KafkaBroker) -> None:
        self._setup = setup
        self._settings = setup.settings
        self._deliver = deliver
        self._broker = broker
        # Kafka timestamps are wall-clock milliseconds, truncated; rounding up could skip a record
        # appended within the same millisecond.
        self._since_ms = int(time.time() * 1000)
        self.producer: Producer | None = None
        self._consumer: Consumer | None = None
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
                log.warning("kafka_unavailable", bootstrap=self._settings.kafka_bootstrap, error=repr(error))
            finally:
                self.ready = False
                await self._stop_clients()
            await asyncio.sleep(self._setup.retry_interval)

    async def _start_clients(self) -> None:
        settings, clients, client_id = self._settings, self._setup.clients, self._setup.client_id
        # The topic's records are stamped by Kafka when appended, which _is_late relies on.
        await clients.create_topic(settings, client_id)
        self.producer = clients.producer(settings, client_id)
        await self.producer.start()
        self._consumer = clients.consumer(settings, client_id)
        await self._consumer.start()
        await self._assign_all_partitions(self._consumer, self.producer)
        self.ready = True
        log.info("kafka_connected", bootstrap=settings.kafka_bootstrap, topic=settings.kafka_topic)

    async def _assign_all_partitions(self, consumer: Consumer, producer: Producer) -> None:
        topic = self._settings.kafka_topic
        # The producer's metadata is the one that waits for the topic to be known.
        numbers = await producer.partitions_for(topic)
        if not numbers:
            raise KafkaError(f"topic {topic} has no partitions yet")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
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
            await asyncio.sleep(self._setup.probe_interval)
            try:
                async with asyncio.timeout(self._setup.probe_interval * 2):
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

    def _deliver_record(self, record: Record) -> None:
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

    def _is_late(self, record: Record, message: Message) -> bool:
        """Whether Kafka appended the record after its publisher's deadline had passed.

        The publisher then told its client `broker_unavailable`, but the producer may still have
        written the record once Kafka came back. Every server compares the same two timestamps
        (Kafka's append time and the publish time in the envelope), so all drop it alike.
        """
        if record.timestamp_type != LOG_APPEND_TIME:
            return False
        published_ms = round(message.timestamp.timestamp() * 1000)
        return bool(record.timestamp - published_ms > self._settings.publish_timeout * 1000)

    async def _stop_clients(self) -> None:
        producer, consumer = self.producer, self._consumer
        self.producer = self._consumer = None
        for client in (producer, consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._settings.publish_timeout):
                        await client.stop()
