"""A Kafka in memory behind the KafkaClients factory: one topic, and every client the broker made of it.

It behaves like aiokafka's clients for the calls the broker makes (tests/contracts/test_kafka_clients.py
runs the same checks on both), and keeps what it was asked, so tests look at its state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    UnknownTopicOrPartitionError,
)
from aiokafka.structs import OffsetAndTimestamp

from minimess.adapters.kafka.broker import partition_of
from minimess.adapters.kafka.clients import Producer
from minimess.adapters.kafka.envelope import Envelope, encode
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.kafka.topic_ids import TopicIdsRequest
from minimess.domain.model import Message, Topic, Uid
from tests.timeouts import scaled

TOPIC = "minimess.test"
PARTITIONS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CREATE_TIME = 0
"""The timestamp type of a record stamped by its producer, Kafka's default."""


def now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class FakeRecord:
    """A record in a partition, with the fields a consumer returns."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    timestamp_type: int


@attrs.frozen
class Behaviour:
    """How one consumer reads: all it can, one record per probe, or nothing after `stall_after` records."""

    stall_after: int | None = None
    one_per_probe: bool = False


class FakeKafka:
    """KafkaClients on one topic in memory (it exists from the start), and the cluster its producers ask.

    Every call a client gets is written to `calls` ("consumer2.seek", ...), and wakes `until`.
    Between a consumer's `assign` and its seeks, any other call or a turn of the event loop is a
    violation: aiokafka could reset a fresh assignment to the end meanwhile.
    """

    def __init__(self, topic: str = TOPIC, partitions: int = PARTITIONS) -> None:
        self.topic = topic
        # The id of the topic's current incarnation; `deleted` until create_topic makes another.
        self.incarnation_id = _new_topic_id()
        self.deleted = False
        self.logs: dict[TopicPartition, list[FakeRecord]] = {
            TopicPartition(topic, n): [] for n in range(partitions)
        }
        # The first offset retention has kept, per partition: the records before it are gone.
        self.log_start: dict[TopicPartition, int] = dict.fromkeys(self.logs, 0)
        # Each create_topic: the topic, its partitions and the client id asking.
        self.topics_created: list[tuple[str, int, str]] = []
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []
        # How each next consumer reads; consumers beyond the list are healthy.
        self.behaviours: list[Behaviour] = []
        # How many of the next starts of each kind ("topic", "producer", "consumer") fail.
        self.start_failures: dict[str, int] = {}
        # Each start: its kind, the loop time, and what `readiness` said then.
        self.start_attempts: list[tuple[str, float, bool]] = []
        self.readiness: Callable[[], bool] = lambda: False
        self.metadata = "ok"  # what the metadata probe does: "ok", "error" or "hang"
        # What becomes of a send: acknowledged "ok", "error", "hang", or "sequence" (state lost);
        # or the record is not taken: "full" (the send waits for room in the producer's buffer,
        # as aiokafka's does while Kafka takes nothing) or "refuse" (the send raises at once); or
        # "stubborn" (see FakeProducer.send).
        self.acks = "ok"
        self.probes = 0
        # Called once, right after the next end_offsets or offsets_for_times answer.
        self.between_lookups: Callable[[], None] | None = None
        self.calls: list[str] = []
        self.unseeked: set[TopicPartition] = set()
        self.violations: list[str] = []
        self._changed = asyncio.Event()

    # --- KafkaClients ---

    async def create_topic(self, settings: KafkaSettings, client_id: str) -> None:
        self.starting("topic", "admin.create_topic")
        self.topics_created.append((settings.kafka_topic, settings.kafka_partitions, client_id))
        if self.deleted:
            self.deleted = False
            self.incarnation_id = _new_topic_id()

    def producer(self, settings: KafkaSettings, client_id: str) -> FakeProducer:
        producer = FakeProducer(self, f"producer{len(self.producers) + 1}", client_id)
        self.producers.append(producer)
        return producer

    async def topic_id(self, producer: Producer, topic: str) -> str:
        assert isinstance(producer, FakeProducer)
        self.entered(f"{producer.name}.topic_id")
        if topic != self.topic or self.deleted:
            raise UnknownTopicOrPartitionError(f"no id for topic {topic}")
        return self.incarnation_id

    def consumer(self, settings: KafkaSettings, client_id: str) -> FakeConsumer:
        behaviour = self.behaviours.pop(0) if self.behaviours else Behaviour()
        consumer = FakeConsumer(self, f"consumer{len(self.consumers) + 1}", client_id, behaviour)
        self.consumers.append(consumer)
        return consumer

    # --- the cluster, as producers see it ---

    async def fetch_all_metadata(self) -> None:
        self.entered("cluster.fetch_all_metadata")
        self.probes += 1
        if self.metadata == "error":
            raise KafkaConnectionError("no broker answers")
        if self.metadata == "hang":
            await asyncio.get_running_loop().create_future()  # only the probe's own timeout ends this

    def get_random_node(self) -> int:
        return 0

    async def send(self, node_id: int, request: TopicIdsRequest) -> object:
        """Nothing sends requests to the fake cluster: FakeKafka.topic_id answers them in its place."""
        raise NotImplementedError("FakeKafka answers topic ids in topic_id")

    # --- what tests do to the topic ---

    def append(
        self,
        partition: int,
        value: bytes | None,
        *,
        timestamp: int | None = None,
        timestamp_type: int = CREATE_TIME,
        key: bytes | None = None,
    ) -> FakeRecord:
        """Append a record stamped `timestamp` (now by default), by Kafka as it appends it by default."""
        log = self.logs[TopicPartition(self.topic, partition)]
        stamp = now_ms() if timestamp is None else timestamp
        record = FakeRecord(self.topic, partition, len(log), key, value, stamp, timestamp_type)
        log.append(record)
        self._wake()
        return record

    def append_message(
        self,
        partition: int,
        *,
        published_ms: int | None = None,
        append_ms: int | None = None,
        timestamp_type: int = CREATE_TIME,
        message_id: str | None = None,
        body: str = "hello",
    ) -> str:
        """Append another server's message; return its id, which says where it lies ("p0o00000003")."""
        published_ms = now_ms() if published_ms is None else published_ms
        offset = len(self.logs[TopicPartition(self.topic, partition)])
        message_id = f"p{partition}o{offset:08d}-message" if message_id is None else message_id
        message = Message(
            id=message_id,
            topic=self.topic_in(partition),
            sender=Uid("bob"),
            body=body,
            timestamp=EPOCH + timedelta(milliseconds=published_ms),
        )
        stamp = published_ms if append_ms is None else append_ms
        self.append(
            partition,
            encode(Envelope(message, "eu-2")),
            timestamp=stamp,
            timestamp_type=timestamp_type,
            key=message.topic.name.encode(),
        )
        return message_id

    def topic_in(self, partition: int) -> Topic:
        """A minimess topic whose records go to `partition` ("news" where it does)."""
        names = ("news", *(f"news-{n}" for n in range(1000)))
        return next(Topic(name) for name in names if partition_of(Topic(name), len(self.logs)) == partition)

    def delete_topic(self) -> None:
        """Delete the topic with its records: it has no id until create_topic makes it anew."""
        self.deleted = True
        for log in self.logs.values():
            log.clear()
        self.log_start = dict.fromkeys(self.logs, 0)
        self._wake()

    def delete_before(self, partition: int, offset: int) -> None:
        """Let retention delete the records of `partition` before `offset`."""
        self.log_start[TopicPartition(self.topic, partition)] = offset
        self._wake()

    def records(self) -> list[FakeRecord]:
        return [record for log in self.logs.values() for record in log]

    # --- waiting and bookkeeping ---

    async def until(self, predicate: Callable[[], bool], what: str, seconds: float = 2.0) -> None:
        """Return once `predicate` holds, checked whenever a client is called or the topic changes.

        The broker changes only after a client answered, and it probes every probe interval, so
        no change goes unseen for longer than that. Fails after `seconds` (scaled).
        """
        try:
            async with asyncio.timeout(scaled(seconds)):
                await self.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"timed out waiting until {what}")

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def probes_pass(self, count: int) -> None:
        """Return once `count` more metadata probes have been made (fails after a while)."""
        target = self.probes + count
        await self.until(lambda: self.probes >= target, f"{count} more probes")

    def entered(self, call: str) -> None:
        self.calls.append(call)
        if self.unseeked and call.rsplit(".", 1)[1] not in ("assign", "seek"):
            self.violations.append(f"{call} ran while {sorted(self.unseeked)} were assigned but not seeked")
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def starting(self, kind: str, call: str) -> None:
        self.entered(call)
        self.start_attempts.append((kind, asyncio.get_running_loop().time(), self.readiness()))
        if self.start_failures.get(kind, 0) > 0:
            self.start_failures[kind] -= 1
            raise KafkaConnectionError(f"{kind} cannot reach the bootstrap servers")

    def check_seeked(self) -> None:
        if self.unseeked:
            self.violations.append(f"{sorted(self.unseeked)} not seeked before the loop turned")

    def lookup_answered(self) -> None:
        hook, self.between_lookups = self.between_lookups, None
        if hook is not None:
            hook()


def _new_topic_id() -> str:
    """A random topic id, spelled as Kafka's tools print one."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


class FakeProducer:
    """Sends to the FakeKafka topic, partitioned by key; each send is acknowledged as `acks` says."""

    def __init__(self, kafka: FakeKafka, name: str, client_id: str) -> None:
        self.client = kafka
        self.name = name
        self.client_id = client_id
        self.stopped = False

    async def start(self) -> None:
        self.client.starting("producer", f"{self.name}.start")

    async def stop(self) -> None:
        self.client.entered(f"{self.name}.stop")
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int] | None:
        self.client.entered(f"{self.name}.partitions_for")
        if topic != self.client.topic:
            return None
        return {partition.partition for partition in self.client.logs}

    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> asyncio.Future[FakeRecord]:
        kafka = self.client
        kafka.entered(f"{self.name}.send")
        assert topic == kafka.topic
        if kafka.acks == "full":
            await asyncio.get_running_loop().create_future()  # only the caller's deadline ends this
        if kafka.acks == "stubborn":
            # Waits for room, keeps the caller's cancellation to itself, and takes the record,
            # which Kafka then never answers. aiokafka does not; the broker must not rely on it.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()
            return asyncio.get_running_loop().create_future()
        if kafka.acks == "refuse":
            raise MessageSizeTooLargeError("the record is larger than the producer takes")
        delivery: asyncio.Future[FakeRecord] = asyncio.get_running_loop().create_future()
        if kafka.acks == "ok":
            delivery.set_result(kafka.append(partition, value, key=key))
        elif kafka.acks == "error":
            delivery.set_exception(KafkaConnectionError("broker went away"))
        elif kafka.acks == "sequence":
            # What every send of an idempotent producer gets once Kafka lost its state.
            delivery.set_exception(OutOfOrderSequenceNumber())
        return delivery


class FakeConsumer:
    """Reads the FakeKafka topic: manual assignment, seeks, offset lookups and long polls.

    A position that retention deleted resumes at the oldest record kept (auto_offset_reset=earliest).
    """

    def __init__(self, kafka: FakeKafka, name: str, client_id: str, behaviour: Behaviour) -> None:
        self._kafka = kafka
        self.name = name
        self.client_id = client_id
        self.behaviour = behaviour
        self.assigned: list[TopicPartition] = []
        # Where the next getmany reads, per partition.
        self.positions: dict[TopicPartition, int] = {}
        self.seeks: dict[TopicPartition, int] = {}
        # The end offsets when it was assigned, to compare the seeks with.
        self.ends_at_assign: dict[TopicPartition, int] = {}
        # At each end_offsets call after the assignment: how many records it lagged in all.
        self.lags: list[int] = []
        self.timestamps_asked: dict[TopicPartition, int] = {}
        self.returned = 0
        self.stopped = False

    def _enter(self, method: str) -> None:
        self._kafka.entered(f"{self.name}.{method}")

    async def start(self) -> None:
        self._kafka.starting("consumer", f"{self.name}.start")

    async def stop(self) -> None:
        self._enter("stop")
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._enter("assign")
        self.assigned = list(partitions)
        self.ends_at_assign = {p: len(self._kafka.logs[p]) for p in partitions}
        self._kafka.unseeked = set(partitions)
        asyncio.get_running_loop().call_soon(self._kafka.check_seeked)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._enter("seek")
        assert partition in self.assigned
        self.positions[partition] = self.seeks[partition] = offset
        self._kafka.unseeked.discard(partition)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._enter("end_offsets")
        ends = {p: len(self._kafka.logs[p]) for p in partitions}
        if self.assigned:
            self.lags.append(sum(end - self.positions[p] for p, end in ends.items() if p in self.assigned))
        self._kafka.lookup_answered()
        return ends

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        self._enter("offsets_for_times")
        found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for partition, since in timestamps.items():
            kept = self._kafka.logs[partition][self._kafka.log_start[partition] :]
            hits = [record for record in kept if record.timestamp >= since]
            found[partition] = OffsetAndTimestamp(hits[0].offset, hits[0].timestamp) if hits else None
        self.timestamps_asked = dict(timestamps)
        self._kafka.lookup_answered()
        return found

    async def position(self, partition: TopicPartition) -> int:
        self._enter("position")
        self._reset_out_of_range()
        return self.positions[partition]

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[FakeRecord]]:
        self._enter("getmany")
        kafka, stall_after = self._kafka, self.behaviour.stall_after
        probes = kafka.probes
        limit = 1 if self.behaviour.one_per_probe else None
        if stall_after is not None:
            limit = stall_after - self.returned

        def ready() -> bool:
            if limit is not None and limit <= 0:
                return False  # stalled for good: every long poll comes back empty
            if self.behaviour.one_per_probe:
                return kafka.probes > probes
            return self.available()

        try:
            async with asyncio.timeout(timeout_ms / 1000):
                await kafka.wait_for(ready)
        except TimeoutError:
            return {}
        return self._take(limit)

    def _reset_out_of_range(self) -> None:
        for partition in self.assigned:
            self.positions[partition] = max(self.positions[partition], self._kafka.log_start[partition])

    def available(self) -> bool:
        self._reset_out_of_range()
        return any(self.positions[p] < len(self._kafka.logs[p]) for p in self.assigned)

    def _take(self, limit: int | None) -> dict[TopicPartition, list[FakeRecord]]:
        self._reset_out_of_range()
        batches: dict[TopicPartition, list[FakeRecord]] = {}
        for partition in self.assigned:
            records = self._kafka.logs[partition][self.positions[partition] :]
            if limit is not None:
                records = records[: limit - sum(len(batch) for batch in batches.values())]
            if records:
                batches[partition] = records
                self.positions[partition] += len(records)
                self.returned += len(records)
        return batches
