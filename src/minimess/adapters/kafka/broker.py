"""The Kafka broker: every server publishes to one Kafka topic and reads back the partitions it needs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.partitioner import murmur2

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.clients import (
    AiokafkaClients,
    Consumer,
    KafkaClients,
    Producer,
    Record,
    Sent,
)
from minimess.adapters.kafka.envelope import Envelope, EnvelopeError, RecordRules
from minimess.adapters.kafka.outage_log import OutageLog
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.app.interest import Interest
from minimess.app.task_groups import until_first_ends
from minimess.domain.errors import BrokerUnavailable, PublishTimeout
from minimess.domain.model import LogState, Message, Position, Topic
from minimess.domain.ports import Acknowledgement, Deliver

log = structlog.get_logger(__name__)


class ConsumerStalled(Exception):
    """The consumer lags behind the end of a partition and has not moved for a whole probe."""


class TopicRecreated(Exception):
    """The Kafka topic was deleted and created again: its offsets start anew, in a new epoch."""


class ProducerStateLost(Exception):
    """Kafka no longer knows the idempotent producer's id or sequence: only a new producer works."""


# After one of these an idempotent producer fails every later send too (Kafka lost or fenced its
# producer state, as after a restart that lost it): the producer is replaced.
_PRODUCER_STATE_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


@attrs.frozen
class _Setup:
    """What every reader of one broker shares: the bus, this server's name, its clients and pace."""

    settings: KafkaSettings
    node_id: str
    clients: KafkaClients
    probe_interval: float
    retry_interval: float
    rules: RecordRules
    # The topics this server needs; None: every topic (all partitions read, every record decoded).
    interest: Interest | None

    @property
    def client_id(self) -> str:
        return f"minimess-{self.node_id}"


def partition_of(topic: Topic, partitions: int) -> int:
    """The partition a minimess topic's records go to: Kafka's own default for the key."""
    return _partition_of_key(topic.name.encode(), partitions)


# Asked for every record read and every publish: murmur2 is pure Python, and topics recur.
@functools.lru_cache(maxsize=4096)
def _partition_of_key(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def epoch_of(topic_id: str, partition: int) -> str:
    """The epoch of one partition of one incarnation of the Kafka topic."""
    return f"{topic_id}.{partition}"


class _Answer:
    """Turns Kafka's delivery of one record into the acknowledgement the Broker port promises.

    A record Kafka acknowledged is acknowledged here once this server has read it back: its
    history then holds every record of the partition before it, so a copy of the same message
    that came first (a retry racing its original) is known, and the publish is answered with the
    original's position, which is the one subscribers see.
    """

    def __init__(
        self,
        acknowledgement: Acknowledgement,
        reader: _Reader,
        partition: TopicPartition,
        epoch: str,
        timeout: float,
    ) -> None:
        self.acknowledgement = acknowledgement
        self._reader = reader
        self._partition = partition
        self._epoch = epoch
        self._timeout = timeout
        # The publish deadline's timer, cancelled when the acknowledgement settles first.
        self.expiry: asyncio.Handle | None = None
        # Kafka acknowledged the record; it waits to be read back.
        self.written = False
        # The task handing the record to the producer, while it does so: the deadline cuts it
        # short (one timer for the whole publish, where a timeout around the hand-over and a
        # timer after it cost twice as much on every publish).
        self.sending: asyncio.Task[Any] | None = None
        self.cut_short = False

    def expire(self) -> None:
        if self.sending is not None:
            # Still waiting for the producer to take it: cancelled there, nothing reached it.
            self.cut_short = True
            self.sending.cancel()
            return
        if self.written:
            self.give_up(
                f"Kafka acknowledged the message, but this server did not read it back within"
                f" {self._timeout:g} s; publishing again with the same id is safe"
            )
        else:
            self.give_up(
                f"Kafka did not acknowledge within {self._timeout:g} s;"
                " publishing again with the same id is safe"
            )

    def give_up(self, reason: str) -> None:
        """Settle as of unknown outcome, unless settled already."""
        if not self.acknowledgement.done():
            self._fail(PublishTimeout(reason))

    def settle(self, delivery: asyncio.Future[Sent]) -> None:
        # Retrieved even after the deadline, so that a late failure is not reported as unhandled.
        error = None if delivery.cancelled() else delivery.exception()
        if self.acknowledgement.done():
            self._stop_expiry()
            return
        if delivery.cancelled():
            self._fail(
                PublishTimeout("the Kafka producer stopped; publishing again with the same id is safe")
            )
        elif isinstance(error, KafkaError):
            if isinstance(error, _PRODUCER_STATE_ERRORS):
                self._reader.producer_state_lost(error)
            self._fail(
                PublishTimeout(
                    f"Kafka did not acknowledge ({error}); publishing again with the same id is safe"
                )
            )
        elif error is not None:
            self._fail(error)
        else:
            # Answered once read back; a record not read back by the deadline (a consumer far
            # behind) expires as PublishTimeout: written, but answered as of unknown outcome.
            self.written = True
            self._reader.when_read_back(self._partition, delivery.result().offset, self)

    def read_back(self, offset: int) -> None:
        """This server has read the record at `offset` back (or will not read its partition)."""
        self._stop_expiry()
        if not self.acknowledgement.done():
            self.acknowledgement.set_result(Position(self._epoch, offset))

    def _fail(self, error: BaseException) -> None:
        self._stop_expiry()
        self.acknowledgement.set_exception(error)

    def _stop_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()


class KafkaBroker:
    """The bus between servers on Apache Kafka, behind the same Broker port as the memory one.

    Records are keyed by minimess topic, so one topic's messages stay in one partition, in one
    order. There is no consumer group: each server reads the partitions holding the topics its
    `interest` needs (all of them without one) and decodes only those topics' records; the origin
    server gets its own publishes back the same way, so everybody sees one order. Each `receiving` is one
    reader of the bus (a server receives once; tests receive twice to play two servers); the
    first one answers for this server where its logs stand.

    A message's position is its record's offset, in the epoch of its partition (the Kafka topic's
    id and the partition number): the same on every server, and new if the topic is recreated.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        node_id: str,
        clients: KafkaClients | None = None,
        probe_interval: float = 1.0,
        retry_interval: float = 1.0,
        rules: RecordRules | None = None,
        interest: Interest | None = None,
    ) -> None:
        self._setup = _Setup(
            settings,
            node_id,
            AiokafkaClients() if clients is None else clients,
            probe_interval,
            retry_interval,
            RecordRules() if rules is None else rules,
            interest,
        )
        self._readers: list[_Reader] = []
        # One replay reads Kafka at a time: recoveries must not crowd out live traffic.
        self._replaying = asyncio.Lock()
        self.undecodable_records = 0
        self.invalid_records = 0
        # Records passed over unread: their key names a topic this server does not need.
        self.unneeded_records = 0
        self.replays = 0
        self.reconnects = 0

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        reader = _Reader(self._setup, deliver, self)
        self._readers.append(reader)
        interest = self._setup.interest
        if interest is not None:
            interest.watch(reader)
        supervisor = asyncio.create_task(reader.supervise())
        try:
            yield
        finally:
            if interest is not None:
                interest.unwatch(reader)
            self._readers.remove(reader)
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    async def publish(self, message: Message) -> Position:
        return await (await self.hand_over(message))

    async def hand_over(self, message: Message) -> Acknowledgement:
        """Hand the message to the producer; return once it took it, with Kafka's answer to come.

        Failing before the producer took the record, nothing can reach Kafka: BrokerUnavailable.
        Once it has taken it, the producer may still write it after any deadline, so a failure
        from then on leaves the outcome unknown: the acknowledgement settles with PublishTimeout,
        at the latest when the publish deadline passes. One producer keeps the order of what it
        was handed per partition (aiokafka sends one batch per partition at a time), and a
        minimess topic is one partition.
        """
        reader = self._publishing_reader()
        if reader is None or reader.producer is None or reader.topic_id is None:
            raise BrokerUnavailable("Kafka is not reachable")
        topic_id = reader.topic_id
        settings = self._setup.settings
        value = envelope.encode(
            Envelope(message=message, origin_node=self._setup.node_id), settings.kafka_envelope_protocol
        )
        partition = partition_of(message.topic, reader.partition_count)
        loop = asyncio.get_running_loop()
        answer = _Answer(
            loop.create_future(),
            reader,
            TopicPartition(settings.kafka_topic, partition),
            epoch_of(topic_id, partition),
            settings.publish_timeout,
        )
        expiry = answer.expiry = loop.call_at(loop.time() + settings.publish_timeout, answer.expire)
        # As asyncio.timeout does it: a cancellation that is the deadline's is told from one of
        # the task's own (the connection closing) by the count of cancellations asked.
        task = answer.sending = asyncio.current_task()
        assert task is not None  # hand_over is awaited from a task
        cancelling = task.cancelling()
        try:
            delivery = await reader.producer.send(
                settings.kafka_topic, value=value, key=message.topic.name.encode(), partition=partition
            )
        except BaseException as error:
            expiry.cancel()
            # If the deadline cancelled the send, that cancellation is taken back (uncancel) whatever
            # the send raised; it is the deadline's, and refused as such, only if no other came.
            if (
                answer.cut_short
                and task.uncancel() <= cancelling
                and isinstance(error, asyncio.CancelledError)
            ):
                raise BrokerUnavailable(
                    f"Kafka did not take the message within {settings.publish_timeout:g} s"
                ) from None
            if isinstance(error, KafkaError):
                raise BrokerUnavailable(f"Kafka refused the message: {error}") from None
            raise
        finally:
            answer.sending = None
        if answer.cut_short:
            # The producer kept the deadline's cancellation to itself and took the record all
            # the same: the cancellation is taken back, and the answer, past its deadline, expires.
            task.uncancel()
            answer.expiry = loop.call_soon(answer.expire)
        asyncio.ensure_future(delivery).add_done_callback(answer.settle)
        return answer.acknowledgement

    def _publishing_reader(self) -> _Reader | None:
        """The first reader that can publish now (a loop: this runs for every publish)."""
        for reader in self._readers:
            if reader.ready and reader.producer and reader.topic_id:
                return reader
        return None

    def log(self, topic: Topic) -> LogState | None:
        reader = self._readers[0] if self._readers else None
        return None if reader is None else reader.log(topic)

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        reader = self._readers[0] if self._readers else None
        return reader is not None and await reader.caught_up(topic, offset)

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        """Read `topic`'s partition from after.offset + 1 to `upto` with a consumer of its own.

        At most --recovery-limit records are read; a range that starts before the oldest record
        Kafka keeps cannot be replayed whole. Records of other topics are passed over by key,
        undecodable or invalid ones skipped, and a repeated id delivered once.
        """
        reader = self._readers[0] if self._readers else None
        log = None if reader is None else reader.log(topic)
        settings = self._setup.settings
        if reader is None or log is None or log.epoch != after.epoch:
            return None
        if upto - after.offset > settings.recovery_limit:
            return None
        if upto <= after.offset:
            return ()
        async with self._replaying:
            self.replays += 1
            return await reader.replay(topic, after.offset + 1, upto)

    def is_ready(self) -> bool:
        # Every reader, not just one: a server (one reader) is ready when its reader is, and
        # with several, ready means each of them receives what is published now.
        return bool(self._readers) and all(reader.ready for reader in self._readers)

    def counters(self) -> Mapping[str, int]:
        return {
            "undecodable_records": self.undecodable_records,
            "invalid_records": self.invalid_records,
            "unneeded_records": self.unneeded_records,
            "replays": self.replays,
            "reconnects": self.reconnects,
        }

    def lag(self) -> Mapping[int, int]:
        # Kafka unreachable, the last probe's ends are stale and the lag they give looks like a
        # healthy server's: none is known until Kafka answers again.
        if not self.is_ready():
            return {}
        return self._readers[0].lag()


class _Reader:
    """One reader of the bus, with the producer it publishes through, kept alive across outages.

    A supervisor (re)creates the Kafka clients until they work; readiness follows a metadata
    probe every probe interval; a consumer that lags and stops moving is recreated where it
    stopped, so nothing is skipped. Reading starts when the reader is made, not at the moment the
    consumer first reaches Kafka, so a message published after that is never missed.

    Per partition it knows where it started (or last had to jump over records retention deleted):
    from there on, every record has passed through it. With an interest, it is assigned only the
    partitions holding a needed topic, and passes over the records of the other topics unread;
    so per topic it also knows the position at which the topic became needed: a history holds
    every message of the topic only from the later of the two on.
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
        # Per partition, the offset from which every record has been delivered.
        self._first: dict[TopicPartition, int] = {}
        # The Kafka topic's id (its incarnation) and partition count, once known.
        self.topic_id: str | None = None
        self.partition_count = 0
        # Set, and replaced, whenever positions move; `caught_up` waits on it.
        self._moved = asyncio.Event()
        # Set when a send showed that Kafka lost the producer's state: the clients are recreated.
        self._producer_lost = asyncio.Event()
        # Logs the link's losses and returns, not every failed attempt.
        self._outage = OutageLog(setup.settings)
        # The end offset of each partition at the last probe, for the consumer lag read at scrape.
        self._ends: Mapping[TopicPartition, int] = {}
        self._interest = setup.interest
        # The partitions the consumer reads now: those holding a needed topic.
        self._assigned: set[TopicPartition] = set()
        # Per partition, how many needed topics it holds (known once the partition count is).
        self._wanted: dict[TopicPartition, int] = {}
        # Per needed topic (by key), the partition's position when it became needed.
        self._topic_first: dict[bytes, int] = {}
        # Whether the consumer has its assignment and may be assigned anew at once.
        self._reading = False
        # Per partition, the answers to this server's publishes that Kafka acknowledged and that
        # wait to be read back, as (offset, answer), in the order Kafka acknowledged them.
        self._read_back: dict[TopicPartition, deque[tuple[int, _Answer]]] = {}

    async def supervise(self) -> None:
        # Every round after the first makes new clients because the ones before failed.
        retrying = False
        while True:
            if retrying:
                self._broker.reconnects += 1
            retrying = True
            try:
                await self._start_clients()
                await self._consume_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._outage.failed(error)
            finally:
                self.ready = False
                await self._stop_clients()
            await asyncio.sleep(self._setup.retry_interval)

    async def _start_clients(self) -> None:
        settings, clients, client_id = self._settings, self._setup.clients, self._setup.client_id
        await clients.create_topic(settings, client_id)
        self._producer_lost = asyncio.Event()
        self.producer = clients.producer(settings, client_id)
        await self.producer.start()
        self._consumer = clients.consumer(settings, client_id)
        await self._consumer.start()
        topic_id = await clients.topic_id(self.producer, settings.kafka_topic)
        if self.topic_id is not None and topic_id != self.topic_id:
            # Deleted and recreated while this server ran: the offsets it kept are of the old
            # incarnation, so every partition starts afresh, found by time as at the start.
            log.warning("kafka_topic_recreated", topic=settings.kafka_topic, old=self.topic_id, new=topic_id)
            self._positions.clear()
            self._first.clear()
            self._topic_first.clear()
            # Their records went with the old incarnation, and its offsets mean nothing now.
            for waiting in self._read_back.values():
                for _, answer in waiting:
                    answer.give_up(
                        "the Kafka topic was recreated before this server read the message back;"
                        " publishing again with the same id is safe"
                    )
            self._read_back.clear()
        await self._assign_all_partitions(self._consumer, self.producer)
        self.topic_id = topic_id
        self.ready = True
        self._outage.connected()

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
            # The lag is known from the start, not only from the first probe on.
            self._ends = {**self._ends, **ends}
            found = await consumer.offsets_for_times(dict.fromkeys(new, self._since_ms))
            for partition in new:
                hit = found.get(partition)
                self._positions[partition] = hit.offset if hit is not None else ends[partition]
                self._first[partition] = self._positions[partition]
        self.partition_count = len(partitions)
        if self._interest is None:
            self._wanted = dict.fromkeys(partitions, 1)
        else:
            self._wanted = {}
            for needed in self._interest.topics():
                partition = self._partition(needed)
                self._wanted[partition] = self._wanted.get(partition, 0) + 1
        self._assign(consumer, {partition for partition in partitions if self._wanted.get(partition)})
        self._reading = True
        self._announce_moved()  # publishes waiting on a partition no longer read are answered

    def _assign(self, consumer: Consumer, partitions: set[TopicPartition]) -> None:
        """Make `partitions` the consumer's assignment, each read on from this reader's position."""
        self._assigned = partitions
        # Assign and seek with no await between: the consumer must never get the chance to
        # reset a fresh assignment to the end on its own (which would skip records), nor to
        # return a kept partition's records from its own position (which could repeat them).
        consumer.assign(sorted(partitions))
        for partition in partitions:
            consumer.seek(partition, self._positions[partition])
        log.info(
            "kafka_partitions_assigned", partitions=sorted(partition.partition for partition in partitions)
        )

    def began(self, topic: Topic) -> None:
        """`topic` is needed from now on: its partition is read, from here if it was not."""
        if not self.partition_count:
            return  # the first assignment reads every topic needed by then
        partition = self._partition(topic)
        self._wanted[partition] = self._wanted.get(partition, 0) + 1
        if partition not in self._assigned:
            # Nothing of it has passed through this reader lately: it is read from the end known
            # at the last probe (a record published from now on lies at or after it), and holds
            # every record only from there.
            start = max(self._ends.get(partition, 0), self._positions.get(partition, 0))
            self._positions[partition] = self._first[partition] = start
            if self._reading and self._consumer is not None:
                self._assign(self._consumer, self._assigned | {partition})
            else:
                self._assigned = self._assigned | {partition}
            self._announce_moved()
        self._topic_first[topic.name.encode()] = self._positions[partition]

    def ended(self, topic: Topic) -> None:
        """`topic` is no longer needed; its partition is let go at the next probe if no other needs it."""
        self._topic_first.pop(topic.name.encode(), None)
        if not self.partition_count:
            return
        partition = self._partition(topic)
        self._wanted[partition] = self._wanted.get(partition, 0) - 1
        if self._wanted[partition] <= 0:
            del self._wanted[partition]

    def _let_go_unwanted(self) -> None:
        # At the probe, not at once: a topic unsubscribed and subscribed again (a reconnect)
        # does not make the consumer drop and fetch its partition anew.
        unwanted = {partition for partition in self._assigned if not self._wanted.get(partition)}
        if unwanted and self._reading and self._consumer is not None:
            self._assign(self._consumer, self._assigned - unwanted)
            self._announce_moved()  # a catch-up waiting on a partition let go gives up

    async def _consume_and_watch(self) -> None:
        """Deliver records, and probe Kafka beside it; return or raise when either fails.

        The probe runs in its own task so that its round trips never delay a delivery.
        """
        for task in await until_first_ends(self._consume(), self._watch(), self._until_producer_lost()):
            task.result()

    def producer_state_lost(self, error: KafkaError) -> None:
        """A send failed in a way no later send of this producer recovers from."""
        if not self._producer_lost.is_set():
            log.warning("kafka_producer_state_lost", error=repr(error))
            self.ready = False
            self._producer_lost.set()

    async def _until_producer_lost(self) -> None:
        await self._producer_lost.wait()
        raise ProducerStateLost("Kafka lost the producer's state; making a new producer")

    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        needs = None if self._interest is None else self._interest.needs
        positions = self._positions
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            unneeded = 0
            for partition, records in batches.items():
                if partition not in self._assigned:
                    continue  # let go while these were on their way
                for record in records:
                    position = positions[partition]
                    if record.offset < position:
                        continue  # delivered already, before a new assignment
                    if record.offset != position:
                        # Records were passed over (deleted by retention, or transaction markers):
                        # this server has every record of the partition only from here on.
                        self._first[partition] = record.offset
                    positions[partition] = record.offset + 1
                    if needs is not None and not needs(record.key):
                        # The key is the topic's name: a topic nobody here needs is not decoded.
                        unneeded += 1
                        continue
                    self._deliver_record(record, partition)
            self._broker.unneeded_records += unneeded
            if batches:
                self._announce_moved()

    async def _watch(self) -> None:
        """Every probe interval: is Kafka reachable (readiness), and does the consumer move?

        Raises ConsumerStalled when a partition lagged at the last probe and its position has
        not moved since, and TopicRecreated when the topic's id changed (the clients are then
        made anew, and every partition read from its new start).
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
                    topic_id = await self._setup.clients.topic_id(producer, self._settings.kafka_topic)
                    if topic_id != self.topic_id:
                        raise TopicRecreated(f"the Kafka topic has a new id, {topic_id}")
                    ends = await consumer.end_offsets(list(self._positions))
                    self._ends = ends
                    if self._interest is not None:
                        self._interest.expire()
                        self._let_go_unwanted()
                    # The consumer may have moved past records it never returned (deleted by
                    # retention); its own position is then the one to compare with the end.
                    for partition in ends:
                        if partition not in self._assigned:
                            continue
                        position = await consumer.position(partition)
                        if partition not in self._assigned:
                            continue  # let go while asked
                        if position > self._positions[partition]:
                            # Moved past records it never returned: complete only from here.
                            self._positions[partition] = self._first[partition] = position
                            self._announce_moved()
            except (KafkaError, TimeoutError) as error:
                self._outage.failed(error)
                self.ready = False
                lagging = {}
                continue
            self._outage.reachable()
            self.ready = True
            now_lagging = {
                p: self._positions[p]
                for p, end in ends.items()
                if p in self._assigned and end > self._positions[p]
            }
            if any(lagging.get(p) == position for p, position in now_lagging.items()):
                raise ConsumerStalled("a lagging partition made no progress between two probes")
            lagging = now_lagging

    def _deliver_record(self, record: Record, partition: TopicPartition) -> None:
        message = self._read_record(record, partition)
        if message is None:
            return
        try:
            self._deliver(message)
        except Exception:
            # A bug in delivery must not be taken for a Kafka outage and restart the clients.
            log.exception("delivery_failed", message_id=message.id)

    def _read_record(self, record: Record, partition: TopicPartition) -> Message | None:
        """The record's message with its position, or None (skipped, counted, logged)."""
        assert self.topic_id is not None
        try:
            position = Position(epoch_of(self.topic_id, partition.partition), record.offset)
            message = envelope.decode(record.value or b"", self._setup.rules, position).message
        except EnvelopeError as error:
            if isinstance(error, envelope.InvalidRecord):
                self._broker.invalid_records += 1
            else:
                self._broker.undecodable_records += 1
            log.warning(
                "kafka_record_skipped", partition=record.partition, offset=record.offset, reason=str(error)
            )
            return None
        key = message.topic.name.encode()
        if record.key != key or partition_of(message.topic, self.partition_count) != partition.partition:
            # Not where its topic's records go: its offset would be in another topic's epoch.
            self._broker.invalid_records += 1
            log.warning(
                "kafka_record_skipped",
                partition=record.partition,
                offset=record.offset,
                reason=f"topic {message.topic} keyed {record.key!r} in partition {record.partition}",
            )
            return None
        return message

    def log(self, topic: Topic) -> LogState | None:
        """How far this reader has delivered the partition of `topic`; None before it knows."""
        if self.topic_id is None or not self.partition_count:
            return None
        partition = self._partition(topic)
        position = self._positions.get(partition)
        if position is None:
            return None
        epoch = epoch_of(self.topic_id, partition.partition)
        if partition not in self._assigned:
            # Not read here: the log stands at the end of the last probe, and nothing of it is kept.
            end = max(position, self._ends.get(partition, 0))
            return LogState(epoch, last=end - 1, first=end)
        first = self._first[partition]
        if self._interest is not None:
            key = topic.name.encode()
            # Its records are read only from where it became needed; not needed, from nowhere.
            first = max(first, self._topic_first.get(key, first)) if self._interest.needs(key) else position
        return LogState(epoch, last=position - 1, first=first)

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        """Wait until the partition of `topic` is delivered up to `offset`, if it exists yet."""
        if self.topic_id is None or not self.partition_count or self._consumer is None:
            return False
        partition = self._partition(topic)
        if partition not in self._assigned:
            return False  # not read here: no wait helps
        try:
            ends = await self._consumer.end_offsets([partition])
        except KafkaError as error:
            log.info("kafka_catch_up_failed", error=repr(error))
            return False
        if offset >= ends.get(partition, 0):
            return False  # no such record (yet): the position came from elsewhere
        while self._positions[partition] <= offset:
            if partition not in self._assigned:
                return False
            await self._moved.wait()
        return True

    async def replay(self, topic: Topic, first: int, upto: int) -> Sequence[Message] | None:
        """The messages of `topic` at offsets first..upto, read by a consumer made for it."""
        partition = self._partition(topic)
        key = topic.name.encode()
        consumer = self._setup.clients.consumer(self._settings, f"{self._setup.client_id}-replay")
        messages: list[Message] = []
        seen: set[str] = set()
        try:
            await consumer.start()
            consumer.assign([partition])
            consumer.seek(partition, first)
            expected = first
            while expected <= upto:
                batches = await consumer.getmany(timeout_ms=100)
                for record in batches.get(partition, ()):
                    if record.offset > upto:
                        return messages
                    if record.offset != expected:
                        # A record this server cannot read back (deleted by retention, say): the
                        # replay could not be shown to be whole, so there is none.
                        return None
                    expected += 1
                    if record.key != key:
                        continue
                    message = self._read_record(record, partition)
                    if message is not None and message.topic == topic and message.id not in seen:
                        seen.add(message.id)
                        messages.append(message)
            return messages
        except KafkaError as error:
            log.info("kafka_replay_failed", error=repr(error))
            return None
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def lag(self) -> dict[int, int]:
        """Per partition, the records between this reader's position and the end at the last probe."""
        positions = self._positions
        return {
            partition.partition: max(0, end - positions[partition])
            for partition, end in self._ends.items()
            if partition in positions and partition in self._assigned
        }

    def _partition(self, topic: Topic) -> TopicPartition:
        return TopicPartition(self._settings.kafka_topic, partition_of(topic, self.partition_count))

    def when_read_back(self, partition: TopicPartition, offset: int, answer: _Answer) -> None:
        """Call `answer.read_back(offset)` once the record at `offset` has been delivered here;
        at once if it has been, or if the partition is not read here (no wait would help)."""
        if partition in self._assigned and self._positions.get(partition, 0) <= offset:
            self._read_back.setdefault(partition, deque()).append((offset, answer))
        else:
            answer.read_back(offset)

    def _announce_moved(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()
        for partition, waiting in self._read_back.items():
            if not waiting:
                continue
            read = partition in self._assigned
            position = self._positions.get(partition, 0)
            # Those past their deadline already (answered PublishTimeout) go as well.
            while waiting and (not read or waiting[0][0] < position or waiting[0][1].acknowledgement.done()):
                offset, answer = waiting.popleft()
                answer.read_back(offset)

    async def _stop_clients(self) -> None:
        producer, consumer = self.producer, self._consumer
        self.producer = self._consumer = None
        self._reading = False
        for client in (producer, consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._settings.publish_timeout):
                        await client.stop()
