"""The Kafka broker's supervision without Kafka: stalls, probes, restarts, start offsets and late records."""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import OffsetAndTimestamp
from structlog.testing import capture_logs

from minimess.adapters.kafka import broker as kafka_broker
from minimess.adapters.kafka.broker import LOG_APPEND_TIME, KafkaBroker
from minimess.adapters.kafka.envelope import Envelope, encode
from minimess.domain.errors import BrokerUnavailable
from minimess.domain.model import Message, Topic, Uid
from tests.timeouts import scaled

TOPIC = "minimess.test"
PARTITIONS = 3
PROBE = 0.02
RETRY = 0.02
CREATE_TIME = 0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Long before any attach time: a record stamped then is not found by offsets_for_times.
LONG_AGO_MS = 60_000


def _tp(number: int) -> TopicPartition:
    return TopicPartition(TOPIC, number)


def _now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class FakeRecord:
    """A consumed record, with the fields the broker reads."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: int
    timestamp_type: int


@attrs.frozen
class Behaviour:
    """How one consumer reads: all it can, only one record per probe, or nothing after some records."""

    stall_after: int | None = None
    one_per_probe: bool = False


HEALTHY = Behaviour()


class FakeKafka:
    """One Kafka topic in memory, with every client the broker made of it and what each was asked."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[FakeRecord]] = {_tp(n): [] for n in range(PARTITIONS)}
        # The first offset retention has kept, per partition: the records before it are gone.
        self.log_start: dict[TopicPartition, int] = dict.fromkeys(self.logs, 0)
        self.admins: list[FakeAdmin] = []
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []
        # How each next consumer reads; consumers beyond the list are healthy.
        self.behaviours: list[Behaviour] = []
        # How many starts of each kind of client ("admin", "producer", "consumer") still fail.
        self.start_failures: dict[str, int] = {}
        # Each start attempt: the kind of client, the loop time, and whether the broker was ready.
        self.start_attempts: list[tuple[str, float, bool]] = []
        self.readiness: Callable[[], bool] = lambda: False
        self.metadata = "ok"  # what fetch_all_metadata does: "ok", "error" or "hang"
        self.probes = 0
        # Called once, right after the first end_offsets or offsets_for_times answer.
        self.between_lookups: Callable[[], None] | None = None
        # Every call made to a fake, in order, as "consumer1.seek" and the like.
        self.calls: list[str] = []
        # Partitions assigned and not yet seeked; any fake coroutine entered meanwhile is a violation.
        self.unseeked: set[TopicPartition] = set()
        self.violations: list[str] = []
        self._appended = asyncio.Event()
        self._probed = asyncio.Event()
        self._activity = asyncio.Event()

    def append_value(self, partition: int, value: bytes, timestamp: int, timestamp_type: int) -> FakeRecord:
        log = self.logs[_tp(partition)]
        record = FakeRecord(TOPIC, partition, len(log), value, timestamp, timestamp_type)
        log.append(record)
        self._appended.set()
        self._appended = asyncio.Event()
        return record

    def append(
        self,
        partition: int,
        *,
        published_ms: int | None = None,
        append_ms: int | None = None,
        timestamp_type: int = LOG_APPEND_TIME,
    ) -> str:
        """Append one envelope from another server; return its message id, which names where it lies."""
        published_ms = _now_ms() if published_ms is None else published_ms
        append_ms = published_ms if append_ms is None else append_ms
        message_id = f"p{partition}o{len(self.logs[_tp(partition)])}"
        message = Message(
            id=message_id,
            topic=Topic("news"),
            sender=Uid("bob"),
            body="hello",
            timestamp=EPOCH + timedelta(milliseconds=published_ms),
        )
        self.append_value(partition, encode(Envelope(message, "eu-2")), append_ms, timestamp_type)
        return message_id

    def delete_before(self, partition: int, offset: int) -> None:
        """Let retention delete the records of `partition` before `offset`, as Kafka does to old segments."""
        self.log_start[_tp(partition)] = offset

    def end(self, partition: TopicPartition) -> int:
        return len(self.logs[partition])

    def entered(self, call: str) -> None:
        """Record `call`, and a violation if a fake coroutine runs between an assign and its seeks."""
        self.calls.append(call)
        self._activity.set()
        self._activity = asyncio.Event()
        if self.unseeked and call.rsplit(".", 1)[1] not in ("assign", "seek"):
            self.violations.append(f"{call} ran while {sorted(self.unseeked)} were assigned but not seeked")

    def check_seeked(self) -> None:
        if self.unseeked:
            self.violations.append(f"{sorted(self.unseeked)} not seeked before the loop turned")

    def starting(self, kind: str) -> None:
        self.start_attempts.append((kind, asyncio.get_running_loop().time(), self.readiness()))
        if self.start_failures.get(kind, 0) > 0:
            self.start_failures[kind] -= 1
            raise KafkaConnectionError(f"{kind} cannot reach the bootstrap servers")

    def probed(self) -> None:
        self.probes += 1
        self._probed.set()
        self._probed = asyncio.Event()
        self._activity = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], what: str, seconds: float = 2.0) -> None:
        """Return once `predicate` holds, checked after each call to a fake; fail after `seconds` (scaled).

        The broker changes its state only after a fake answered or failed, and its probe calls a fake
        every probe interval, so no change goes unseen for longer than that.
        """
        try:
            async with asyncio.timeout(scaled(seconds)):
                while not predicate():
                    await self._activity.wait()
        except TimeoutError:
            pytest.fail(f"timed out waiting until {what}")

    async def next_append(self) -> None:
        await self._appended.wait()

    async def next_probe(self) -> None:
        await self._probed.wait()

    async def probes_pass(self, count: int) -> None:
        """Return once `count` more metadata probes have been made."""
        target = self.probes + count
        while self.probes < target:
            await self.next_probe()

    def lookup_answered(self) -> None:
        hook, self.between_lookups = self.between_lookups, None
        if hook is not None:
            hook()


class FakeAdmin:
    """An AIOKafkaAdminClient on FakeKafka: it starts (or fails to), creates the topic, closes."""

    def __init__(self, kafka: FakeKafka, **config: Any) -> None:
        self._kafka = kafka
        self.config = config
        self.closed = False
        self.new_topics: list[Any] = []
        kafka.admins.append(self)

    async def start(self) -> None:
        self._kafka.entered("admin.start")
        self._kafka.starting("admin")

    async def create_topics(self, new_topics: list[Any]) -> Any:
        self._kafka.entered("admin.create_topics")
        self.new_topics.extend(new_topics)
        return SimpleNamespace(topic_errors=[(topic.name, 0, None) for topic in new_topics])

    async def close(self) -> None:
        self._kafka.entered("admin.close")
        self.closed = True


class FakeClient:
    """The producer's cluster client, whose metadata fetch is the broker's readiness probe."""

    def __init__(self, kafka: FakeKafka) -> None:
        self._kafka = kafka

    async def fetch_all_metadata(self) -> None:
        kafka = self._kafka
        kafka.entered("client.fetch_all_metadata")
        kafka.probed()
        if kafka.metadata == "error":
            raise KafkaConnectionError("no broker answers")
        if kafka.metadata == "hang":
            # Never answered: only the probe's own timeout ends this.
            await asyncio.get_running_loop().create_future()


class FakeProducer:
    """An AIOKafkaProducer on FakeKafka: it starts (or fails to), knows the partitions, appends its sends."""

    def __init__(self, kafka: FakeKafka, **config: Any) -> None:
        self._kafka = kafka
        self.config = config
        self.client = FakeClient(kafka)
        self.stopped = False
        kafka.producers.append(self)

    async def start(self) -> None:
        self._kafka.entered("producer.start")
        self._kafka.starting("producer")

    async def stop(self) -> None:
        self._kafka.entered("producer.stop")
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        self._kafka.entered("producer.partitions_for")
        assert topic == TOPIC
        return set(range(PARTITIONS))

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self._kafka.entered("producer.send")
        assert topic == TOPIC
        self._kafka.append_value(zlib.crc32(key) % PARTITIONS, value, _now_ms(), LOG_APPEND_TIME)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery


class FakeConsumer:
    """An AIOKafkaConsumer on FakeKafka: manual assignment, seek, offset lookups and getmany."""

    def __init__(self, kafka: FakeKafka, **config: Any) -> None:
        self._kafka = kafka
        self.config = config
        self.name = f"consumer{len(kafka.consumers) + 1}"
        self.behaviour = kafka.behaviours.pop(0) if kafka.behaviours else HEALTHY
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
        kafka.consumers.append(self)

    def _enter(self, method: str) -> None:
        self._kafka.entered(f"{self.name}.{method}")

    async def start(self) -> None:
        self._enter("start")
        self._kafka.starting("consumer")

    async def stop(self) -> None:
        self._enter("stop")
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._enter("assign")
        self.assigned = list(partitions)
        self.ends_at_assign = {p: self._kafka.end(p) for p in partitions}
        self._kafka.unseeked = set(partitions)
        asyncio.get_running_loop().call_soon(self._kafka.check_seeked)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._enter("seek")
        assert partition in self.assigned
        self.positions[partition] = self.seeks[partition] = offset
        self._kafka.unseeked.discard(partition)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._enter("end_offsets")
        ends = {p: self._kafka.end(p) for p in partitions}
        if self.assigned:
            self.lags.append(sum(end - self.positions[p] for p, end in ends.items()))
        self._kafka.lookup_answered()
        return ends

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        self._enter("offsets_for_times")
        found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for partition, since in timestamps.items():
            hits = [r for r in self._kafka.logs[partition] if r.timestamp >= since]
            found[partition] = OffsetAndTimestamp(hits[0].offset, hits[0].timestamp) if hits else None
        self.timestamps_asked = dict(timestamps)
        self._kafka.lookup_answered()
        return found

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[FakeRecord]]:
        self._enter("getmany")
        behaviour = self.behaviour
        limit: int | None = None
        if behaviour.stall_after is not None:
            limit = behaviour.stall_after - self.returned
            if limit <= 0:
                # Stalled for good: every long poll comes back empty.
                await asyncio.sleep(timeout_ms / 1000)
                return {}
        if behaviour.one_per_probe:
            await self._kafka.next_probe()
            limit = 1
        elif not self._available():
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    await self._kafka.next_append()
            except TimeoutError:
                return {}
        return self._take(limit)

    async def position(self, partition: TopicPartition) -> int:
        self._enter("position")
        self._reset_out_of_range()
        return self.positions[partition]

    def _reset_out_of_range(self) -> None:
        """Move a position retention deleted as aiokafka does: by auto_offset_reset, "latest" by default."""
        for partition in self.assigned:
            if self.positions[partition] < self._kafka.log_start[partition]:
                reset = self.config.get("auto_offset_reset", "latest")
                assert reset in ("earliest", "latest"), reset
                earliest = reset == "earliest"
                self.positions[partition] = (
                    self._kafka.log_start[partition] if earliest else self._kafka.end(partition)
                )

    def _available(self) -> bool:
        self._reset_out_of_range()
        return any(self.positions[p] < self._kafka.end(p) for p in self.assigned)

    def _take(self, limit: int | None) -> dict[TopicPartition, list[FakeRecord]]:
        self._reset_out_of_range()
        batches: dict[TopicPartition, list[FakeRecord]] = {}
        for partition in self.assigned:
            records = self._kafka.logs[partition][self.positions[partition] :]
            if limit is not None:
                records = records[: limit - self.returned_now(batches)]
            if records:
                batches[partition] = records
                self.positions[partition] += len(records)
                self.returned += len(records)
        return batches

    @staticmethod
    def returned_now(batches: dict[TopicPartition, list[FakeRecord]]) -> int:
        return sum(len(records) for records in batches.values())


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKafka]:
    """A FakeKafka standing in for every aiokafka client the broker builds; no assign is left unseeked."""
    fake = FakeKafka()
    monkeypatch.setattr(kafka_broker, "AIOKafkaAdminClient", lambda **config: FakeAdmin(fake, **config))
    monkeypatch.setattr(kafka_broker, "AIOKafkaProducer", lambda **config: FakeProducer(fake, **config))
    monkeypatch.setattr(kafka_broker, "AIOKafkaConsumer", lambda **config: FakeConsumer(fake, **config))
    yield fake
    assert fake.violations == []


class Inbox:
    """The deliver callback of an attach: keeps what it is given and wakes whoever waits for it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()

    def deliver(self, message: Message) -> None:
        self.messages.append(message)
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def holds(self, count: int) -> None:
        """Return once `count` messages have been delivered in all."""
        while len(self.messages) < count:
            await self._arrived.wait()

    @property
    def ids(self) -> list[str]:
        return [message.id for message in self.messages]


def _broker(kafka: FakeKafka, publish_timeout: float = 1.0) -> KafkaBroker:
    broker = KafkaBroker(
        bootstrap="kafka.invalid:9092",
        topic=TOPIC,
        partitions=PARTITIONS,
        publish_timeout=publish_timeout,
        node_id="eu-1",
        probe_interval=PROBE,
        retry_interval=RETRY,
    )
    kafka.readiness = broker.is_ready
    return broker


def _in_kafka_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda message_id: tuple(int(n) for n in message_id[1:].split("o")))


def _message() -> Message:
    return Message.create(Topic("news"), Uid("alice"), "hi", datetime.now(UTC))


# --- a stalled consumer --------------------------------------------------------------------------


async def test_a_lagging_consumer_that_stops_moving_is_recreated_where_it_stopped(kafka: FakeKafka) -> None:
    """A consumer behind the end that returns nothing is stalled: a new one resumes at the saved positions."""
    kafka.behaviours = [Behaviour(stall_after=1)]
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.attach(inbox.deliver):
            await kafka.until(broker.is_ready, "the broker is ready")
            first = kafka.append(0)
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(1)
            later = [kafka.append(0), kafka.append(0), kafka.append(1)]
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(4)
                # Time for a record delivered twice to show up.
                await kafka.probes_pass(3)
    stalled, fresh = kafka.consumers
    assert stalled.stopped
    assert fresh.seeks == {_tp(0): 1, _tp(1): 0, _tp(2): 0}
    assert fresh.ends_at_assign[_tp(0)] == 3, "the saved position was behind the end, not at it"
    assert [call for call in kafka.calls if call.startswith("consumer2.")][:5] == [
        "consumer2.start",
        "consumer2.assign",
        "consumer2.seek",
        "consumer2.seek",
        "consumer2.seek",
    ]
    assert inbox.ids[0] == first
    assert _in_kafka_order(inbox.ids[1:]) == later
    assert len(inbox.ids) == len(set(inbox.ids)) == 4
    (entry,) = [entry for entry in logs if entry["event"] == "kafka_unavailable"]
    assert "ConsumerStalled" in entry["error"]
    assert entry["log_level"] == "warning"


async def test_a_lagging_consumer_that_keeps_moving_is_kept(kafka: FakeKafka) -> None:
    """A consumer behind the end at every probe, but a little further each time, is not recreated."""
    kafka.behaviours = [Behaviour(one_per_probe=True)]
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.attach(inbox.deliver):
            ids = [kafka.append(0) for _ in range(6)]
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(6)
                # Caught up and idle for a while: still the same consumer.
                await kafka.probes_pass(3)
    (consumer,) = kafka.consumers
    assert sum(1 for lag in consumer.lags if lag > 0) >= 3, "it lagged at several probes in a row"
    assert inbox.ids == ids
    assert [entry for entry in logs if entry["event"] == "kafka_unavailable"] == []
    assert (len(kafka.admins), len(kafka.producers)) == (1, 1)


# --- readiness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["error", "hang"])
async def test_readiness_follows_the_metadata_probe_without_restarting_clients(
    kafka: FakeKafka, failure: str
) -> None:
    """A probe that fails or outlasts its timeout makes the broker unready; the next good one, ready again."""
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.attach(inbox.deliver):
            await kafka.until(broker.is_ready, "the broker is first ready")
            kafka.metadata = failure
            await kafka.until(lambda: not broker.is_ready(), "the failed probe makes the broker unready")
            with pytest.raises(BrokerUnavailable):
                await broker.publish(_message())
            kafka.metadata = "ok"
            await kafka.until(broker.is_ready, "a good probe makes the broker ready again")
            message = _message()
            async with asyncio.timeout(scaled(2)):
                await broker.publish(message)
                await inbox.holds(1)
    assert inbox.messages == [message]
    assert (len(kafka.admins), len(kafka.producers), len(kafka.consumers)) == (1, 1, 1)
    events = [entry["event"] for entry in logs if entry["event"].startswith("kafka_")]
    assert events == ["kafka_connected", "kafka_unreachable", "kafka_reachable_again"]
    (unreachable,) = [entry for entry in logs if entry["event"] == "kafka_unreachable"]
    assert ("KafkaConnectionError" if failure == "error" else "TimeoutError") in unreachable["error"]


# --- starting the clients ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["admin", "producer", "consumer"])
async def test_clients_that_fail_to_start_are_retried_until_they_work(kafka: FakeKafka, kind: str) -> None:
    """Each failed start is logged, its clients stopped, and retried after retry_interval until it works."""
    kafka.start_failures = {kind: 2}
    broker = _broker(kafka)
    with capture_logs() as logs:
        async with broker.attach(Inbox().deliver):
            await kafka.until(broker.is_ready, "the third start works")
            assert len(kafka.consumers) == (3 if kind == "consumer" else 1)
    attempts = [(when, ready) for started, when, ready in kafka.start_attempts if started == kind]
    assert len(attempts) == 3
    assert [ready for _when, ready in attempts] == [False, False, False]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(attempts)]
    assert all(gap >= RETRY * 0.99 for gap in gaps), gaps
    failures = [entry for entry in logs if entry["event"] == "kafka_unavailable"]
    assert len(failures) == 2
    assert all("KafkaConnectionError" in entry["error"] for entry in failures)
    assert all(producer.stopped for producer in kafka.producers)
    assert all(consumer.stopped for consumer in kafka.consumers)


# --- where reading starts ------------------------------------------------------------------------


async def test_the_first_assignment_starts_at_the_attach_time_else_at_the_end_asked_first(
    kafka: FakeKafka,
) -> None:
    """A partition starts at its first record since attach, else at the end offset asked before the lookup."""
    long_ago = _now_ms() - LONG_AGO_MS
    for partition, old in ((0, 2), (1, 1), (2, 3)):
        for _ in range(old):
            kafka.append(partition, published_ms=long_ago)
    broker = _broker(kafka)
    inbox = Inbox()
    before_attach = _now_ms()
    async with broker.attach(inbox.deliver):
        after_attach = _now_ms()
        # Published after the attach, before this server's consumer reached Kafka.
        since_attach = [kafka.append(1), kafka.append(1)]
        # And one appended between the two lookups: it must not fall between them.
        between: list[str] = []
        kafka.between_lookups = lambda: between.append(kafka.append(0))
        await kafka.until(broker.is_ready, "the broker is ready")
        later = kafka.append(2)
        async with asyncio.timeout(scaled(2)):
            await inbox.holds(4)
            await kafka.probes_pass(2)
    (consumer,) = kafka.consumers
    lookups = [
        call.split(".")[1]
        for call in kafka.calls
        if call.split(".")[1] in ("end_offsets", "offsets_for_times", "assign", "seek")
    ]
    assert lookups[:6] == ["end_offsets", "offsets_for_times", "assign", "seek", "seek", "seek"]
    assert set(consumer.timestamps_asked) == {_tp(0), _tp(1), _tp(2)}
    (since,) = set(consumer.timestamps_asked.values())
    assert before_attach <= since <= after_attach
    assert consumer.seeks == {_tp(0): 2, _tp(1): 1, _tp(2): 3}
    assert _in_kafka_order(inbox.ids) == [*between, *since_attach, later]


async def test_the_fake_consumer_catches_an_await_between_assign_and_seek(kafka: FakeKafka) -> None:
    """The check behind the previous test is real: a loop turn between assign and seek is a violation."""
    consumer = FakeConsumer(kafka)
    consumer.assign([_tp(0), _tp(1)])
    consumer.seek(_tp(0), 0)
    await consumer.end_offsets([_tp(0)])
    await asyncio.sleep(0)
    consumer.seek(_tp(1), 0)
    unseeked = "[TopicPartition(topic='minimess.test', partition=1)]"
    assert kafka.violations == [
        f"consumer1.end_offsets ran while {unseeked} were assigned but not seeked",
        f"{unseeked} not seeked before the loop turned",
    ]
    kafka.violations.clear()


# --- late records --------------------------------------------------------------------------------


async def test_a_record_kafka_appended_after_the_publish_deadline_is_dropped(kafka: FakeKafka) -> None:
    """LogAppendTime past publish_timeout after the publish time is dropped, logged and counted; no other."""
    broker = _broker(kafka, publish_timeout=0.25)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.attach(inbox.deliver):
            published = _now_ms()
            late = kafka.append(0, published_ms=published, append_ms=published + 251)
            on_time = kafka.append(0, published_ms=published, append_ms=published + 250)
            created_late = kafka.append(
                0, published_ms=published, append_ms=published + 25_000, timestamp_type=CREATE_TIME
            )
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(2)
                await kafka.probes_pass(2)
    assert inbox.ids == [on_time, created_late]
    assert broker.late_records == 1
    (entry,) = [entry for entry in logs if entry["event"] == "kafka_record_late"]
    assert (entry["partition"], entry["offset"], entry["id"]) == (0, 0, late)


# --- a saved position that retention has deleted -------------------------------------------------


async def test_a_saved_position_deleted_by_retention_resumes_at_the_oldest_record_kept(
    kafka: FakeKafka,
) -> None:
    """Records kept after a deleted saved position are delivered, not skipped by a jump to the end."""
    broker = _broker(kafka)
    inbox = Inbox()
    async with broker.attach(inbox.deliver):
        await kafka.until(broker.is_ready, "the broker is ready")
        first = kafka.append(0)
        async with asyncio.timeout(scaled(2)):
            await inbox.holds(1)
        # Appended and partly deleted before the consumer fetches again (after an outage, say).
        _deleted, *kept = [kafka.append(0) for _ in range(3)]
        kafka.delete_before(0, 2)
        try:
            async with asyncio.timeout(scaled(1)):
                await inbox.holds(3)
        except TimeoutError:
            pass  # the assertions below say what was missed
        async with asyncio.timeout(scaled(2)):
            await kafka.probes_pass(4)
    assert inbox.ids == [first, *kept], "records Kafka still holds were skipped"
    assert len(kafka.consumers) == 1, f"the consumer was recreated {len(kafka.consumers) - 1} times"


async def test_a_saved_position_whose_records_are_all_deleted_is_not_a_stall(kafka: FakeKafka) -> None:
    """A consumer moved past deleted records to the end is caught up: it is not recreated again and again."""
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.attach(inbox.deliver):
            await kafka.until(broker.is_ready, "the broker is ready")
            first = kafka.append(0)
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(1)
            kafka.append(0)
            kafka.append(0)
            kafka.delete_before(0, 3)
            async with asyncio.timeout(scaled(2)):
                await kafka.probes_pass(8)
            after = kafka.append(0)
            async with asyncio.timeout(scaled(2)):
                await inbox.holds(2)
    restarts = [entry for entry in logs if entry["event"] == "kafka_unavailable"]
    assert restarts == [], f"{len(restarts)} restarts, the first: {restarts[:1]}"
    assert len(kafka.consumers) == 1
    assert inbox.ids == [first, after]
