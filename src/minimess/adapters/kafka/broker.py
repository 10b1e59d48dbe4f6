"""The Kafka broker: every server publishes to one Kafka topic and reads all of it back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.envelope import Envelope, EnvelopeError
from minimess.domain.errors import BrokerUnavailable
from minimess.domain.model import Message
from minimess.domain.ports import Deliver

log = structlog.get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36


class ConsumerStalled(Exception):
    """The consumer lags behind the end of a partition and has not moved for a whole check."""


class KafkaBroker:
    """The bus between servers on Apache Kafka, behind the same Broker port as the memory one.

    Records are keyed by minimess topic, so one topic's messages stay in one partition, in one
    order. There is no consumer group: every server reads every partition, from the end, and the
    origin server gets its own publishes back the same way, so everybody sees one order.

    Kafka may be down at start or go away at any time. A supervisor task (re)creates the
    clients until they work; `is_ready` follows a metadata probe every `probe_interval`; a
    consumer that lags and stops moving is recreated where it stopped, so nothing is skipped.
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
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._publish_timeout = publish_timeout
        self._node_id = node_id
        self._probe_interval = probe_interval
        self._retry_interval = retry_interval
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._ready = False
        # Next offset to read per partition, kept across consumer restarts.
        self._positions: dict[TopicPartition, int] = {}
        self.undecodable_records = 0

    @asynccontextmanager
    async def attach(self, deliver: Deliver) -> AsyncIterator[None]:
        supervisor = asyncio.create_task(self._supervise(deliver))
        try:
            yield
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    async def publish(self, message: Message) -> None:
        producer = self._producer
        if producer is None or not self._ready:
            raise BrokerUnavailable("Kafka is not reachable")
        value = envelope.encode(Envelope(message=message, origin_node=self._node_id))
        try:
            async with asyncio.timeout(self._publish_timeout):
                delivery = await producer.send(self._topic, value=value, key=message.topic.name.encode())
                await delivery
        except TimeoutError:
            raise BrokerUnavailable(f"Kafka did not acknowledge within {self._publish_timeout:g} s") from None
        except KafkaError as error:
            raise BrokerUnavailable(f"Kafka refused the message: {error}") from None

    def is_ready(self) -> bool:
        return self._ready

    async def _supervise(self, deliver: Deliver) -> None:
        while True:
            try:
                await self._start_clients()
                await self._consume_and_watch(deliver)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("kafka_unavailable", bootstrap=self._bootstrap, error=repr(error))
            finally:
                self._ready = False
                await self._stop_clients()
            await asyncio.sleep(self._retry_interval)

    async def _start_clients(self) -> None:
        await self._ensure_topic()
        timeout_ms = round(self._publish_timeout * 1000)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"minimess-{self._node_id}",
            acks="all",
            enable_idempotence=True,
            # Send at once: a chat message should not wait for a batch to fill.
            linger_ms=0,
            # Records expire when their publish has failed, so a late write cannot surprise anyone.
            request_timeout_ms=timeout_ms,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"minimess-{self._node_id}",
            group_id=None,
            enable_auto_commit=False,
            # A fetch returns as soon as one record is there; this only bounds an idle long poll.
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        await self._assign_all_partitions(self._consumer, self._producer)
        self._ready = True
        log.info("kafka_connected", bootstrap=self._bootstrap, topic=self._topic)

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=f"minimess-{self._node_id}")
        await admin.start()
        try:
            response = await admin.create_topics(
                [NewTopic(self._topic, num_partitions=self._partitions, replication_factor=1)]
            )
            for _name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {self._topic}: error code {code}")
        finally:
            await admin.close()

    async def _assign_all_partitions(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        # The producer's metadata is the one that waits for the topic to be known.
        numbers = await producer.partitions_for(self._topic)
        if not numbers:
            raise KafkaError(f"topic {self._topic} has no partitions yet")
        partitions = [TopicPartition(self._topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        for partition in partitions:
            if partition in self._positions:
                consumer.seek(partition, self._positions[partition])
            else:
                # The first time: only what is published from now on.
                await consumer.seek_to_end(partition)
                self._positions[partition] = await consumer.position(partition)

    async def _consume_and_watch(self, deliver: Deliver) -> None:
        """Deliver records, and probe Kafka beside it; return or raise when either fails.

        The probe runs in its own task so that its round trips never delay a delivery.
        """
        tasks = [asyncio.create_task(self._consume(deliver)), asyncio.create_task(self._watch())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _consume(self, deliver: Deliver) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for partition, records in batches.items():
                for record in records:
                    self._positions[partition] = record.offset + 1
                    self._deliver_record(record, deliver)

    async def _watch(self) -> None:
        """Every probe interval: is Kafka reachable (readiness), and does the consumer move?

        Raises ConsumerStalled when a partition lagged at the last probe and its position has
        not moved since.
        """
        assert self._producer is not None
        assert self._consumer is not None
        producer, consumer = self._producer, self._consumer
        lagging: dict[TopicPartition, int] = {}
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                async with asyncio.timeout(self._probe_interval * 2):
                    await producer.client.fetch_all_metadata()
                    ends = await consumer.end_offsets(list(self._positions))
            except (KafkaError, TimeoutError) as error:
                if self._ready:
                    log.warning("kafka_unreachable", error=repr(error))
                self._ready = False
                lagging = {}
                continue
            if not self._ready:
                log.info("kafka_reachable_again")
            self._ready = True
            now_lagging = {p: self._positions[p] for p, end in ends.items() if end > self._positions[p]}
            if any(lagging.get(p) == position for p, position in now_lagging.items()):
                raise ConsumerStalled("a lagging partition made no progress between two probes")
            lagging = now_lagging

    def _deliver_record(self, record: Any, deliver: Deliver) -> None:
        try:
            message = envelope.decode(record.value or b"").message
        except EnvelopeError as error:
            self.undecodable_records += 1
            log.warning(
                "kafka_record_skipped",
                partition=record.partition,
                offset=record.offset,
                reason=str(error),
            )
            return
        try:
            deliver(message)
        except Exception:
            # A bug in delivery must not be taken for a Kafka outage and restart the clients.
            log.exception("delivery_failed", message_id=message.id)

    async def _stop_clients(self) -> None:
        producer, consumer = self._producer, self._consumer
        self._producer = self._consumer = None
        for client in (producer, consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._publish_timeout):
                        await client.stop()
