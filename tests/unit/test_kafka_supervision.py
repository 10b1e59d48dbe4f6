"""The Kafka broker on a Kafka in memory: supervision, where reading starts, records it skips, publishing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from structlog.testing import capture_logs

from minimess.adapters.kafka.broker import KafkaBroker, epoch_of, partition_of
from minimess.adapters.kafka.envelope import RecordRules
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.domain.errors import BrokerUnavailable, PublishTimeout
from minimess.domain.model import Message, Position, Topic, Uid
from tests.timeouts import scaled
from tests.unit.kafka_fakes import PARTITIONS, TOPIC, Behaviour, FakeKafka, now_ms

PROBE = 0.02
RETRY = 0.02
CREATE_TIME = 0
# Long before any receiving starts: a record stamped then is not found by offsets_for_times.
LONG_AGO_MS = 60_000


def _tp(number: int) -> TopicPartition:
    return TopicPartition(TOPIC, number)


@pytest.fixture
def kafka() -> Iterator[FakeKafka]:
    """The broker's clients; no test may leave an assignment unseeked over an await."""
    fake = FakeKafka()
    yield fake
    assert fake.violations == []


class Inbox(list[Message]):
    """What a reader delivered, in order; tests wait for it through `kafka.until`."""

    @property
    def ids(self) -> list[str]:
        return [message.id for message in self]


def _broker(kafka: FakeKafka, publish_timeout: float = 1.0, rules: RecordRules | None = None) -> KafkaBroker:
    settings = KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS, publish_timeout=publish_timeout)
    broker = KafkaBroker(settings, "eu-1", kafka, probe_interval=PROBE, retry_interval=RETRY, rules=rules)
    kafka.readiness = broker.is_ready
    return broker


def _in_kafka_order(ids: list[str]) -> list[str]:
    return sorted(
        ids, key=lambda message_id: tuple(int(n) for n in message_id[1:].removesuffix("-message").split("o"))
    )


def _message() -> Message:
    return Message.create(Topic("news"), Uid("alice"), "hi", datetime.now(UTC))


def _link_events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The events of the link to Kafka, in order (not which partitions are read)."""
    return [
        entry["event"]
        for entry in logs
        if entry["event"].startswith("kafka_") and entry["event"] != "kafka_partitions_assigned"
    ]


def _events(logs: Sequence[Mapping[str, Any]], event: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


# --- a stalled consumer --------------------------------------------------------------------------


async def test_a_lagging_consumer_that_stops_moving_is_recreated_where_it_stopped(kafka: FakeKafka) -> None:
    """A consumer behind the end that returns nothing is stalled: a new one resumes at the saved positions."""
    kafka.behaviours = [Behaviour(stall_after=1)]
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            await kafka.until(broker.is_ready, "the broker is ready")
            first = kafka.append_message(0)
            await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
            later = [kafka.append_message(0), kafka.append_message(0), kafka.append_message(1)]
            await kafka.until(lambda: len(inbox) >= 4, "4 delivered")
            await kafka.probes_pass(3)  # time for a record delivered twice to show up
    stalled, fresh = kafka.consumers
    assert stalled.stopped
    assert fresh.seeks == {_tp(0): 1, _tp(1): 0, _tp(2): 0}
    assert fresh.ends_at_assign[_tp(0)] == 3, "the saved position was behind the end, not at it"
    fresh_calls = [call for call in kafka.calls if call.startswith("consumer2.")]
    assert fresh_calls[:5] == ["consumer2.start", "consumer2.assign", *["consumer2.seek"] * 3]
    assert inbox.ids[0] == first
    assert _in_kafka_order(inbox.ids[1:]) == later
    assert len(inbox.ids) == len(set(inbox.ids)) == 4
    (entry,) = _events(logs, "kafka_unavailable")
    assert "ConsumerStalled" in entry["error"]
    assert entry["log_level"] == "warning"


async def test_a_lagging_consumer_that_keeps_moving_is_kept(kafka: FakeKafka) -> None:
    """A consumer behind the end at every probe, but a little further each time, is not recreated."""
    kafka.behaviours = [Behaviour(one_per_probe=True)]
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            ids = [kafka.append_message(0) for _ in range(6)]
            await kafka.until(lambda: len(inbox) >= 6, "6 delivered")
            await kafka.probes_pass(3)  # caught up and idle for a while: still the same consumer
    (consumer,) = kafka.consumers
    assert sum(1 for lag in consumer.lags if lag > 0) >= 3, "it lagged at several probes in a row"
    assert inbox.ids == ids
    assert _events(logs, "kafka_unavailable") == []
    assert (len(kafka.topics_created), len(kafka.producers)) == (1, 1)


async def test_the_lag_per_partition_is_the_end_at_the_last_probe_less_the_position(kafka: FakeKafka) -> None:
    """A consumer stalled behind the end shows its lag until it is replaced (a reconnect) and catches up."""
    kafka.behaviours = [Behaviour(stall_after=0)]
    broker = _broker(kafka)
    inbox = Inbox()
    async with broker.receiving(inbox.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        await kafka.until(lambda: broker.lag() == {0: 0, 1: 0, 2: 0}, "the lag of every partition is known")
        for partition in (0, 0, 0, 2):
            kafka.append_message(partition)
        await kafka.until(lambda: broker.lag() == {0: 3, 1: 0, 2: 1}, "a probe saw the records unread")
        await kafka.until(lambda: len(inbox) == 4, "the new consumer delivered them")
        await kafka.until(lambda: broker.lag() == {0: 0, 1: 0, 2: 0}, "a probe saw them read")
    assert broker.counters()["reconnects"] == 1


async def test_while_kafka_is_unreachable_no_lag_is_shown_and_after_it_is_again(kafka: FakeKafka) -> None:
    """The last probe's lag would look like a healthy server's during an outage: none is known then."""
    kafka.behaviours = [Behaviour(one_per_probe=True)]
    broker = _broker(kafka)
    async with broker.receiving(Inbox().append):
        for _ in range(3):
            kafka.append_message(0)
        await kafka.until(lambda: broker.lag().get(0, 0) > 0, "a probe saw records unread")
        kafka.metadata = "error"
        await kafka.until(lambda: not broker.is_ready(), "the failed probe makes the broker unready")
        assert broker.lag() == {}
        kafka.metadata = "ok"
        await kafka.until(lambda: broker.lag() == {0: 0, 1: 0, 2: 0}, "ready again, the lag is shown")


# --- readiness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["error", "hang"])
async def test_readiness_follows_the_metadata_probe_without_restarting_clients(
    kafka: FakeKafka, failure: str
) -> None:
    """A probe that fails or outlasts its timeout makes the broker unready; the next good one, ready again."""
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            await kafka.until(broker.is_ready, "the broker is first ready")
            kafka.metadata = failure
            await kafka.until(lambda: not broker.is_ready(), "the failed probe makes the broker unready")
            with pytest.raises(BrokerUnavailable):
                await broker.publish(_message())
            kafka.metadata = "ok"
            await kafka.until(broker.is_ready, "a good probe makes the broker ready again")
            message = _message()
            await broker.publish(message)
            await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
    assert inbox == [message]
    assert (len(kafka.topics_created), len(kafka.producers), len(kafka.consumers)) == (1, 1, 1)
    events = _link_events(logs)
    assert events == ["kafka_connected", "kafka_unavailable", "kafka_reachable_again"]
    (unreachable,) = _events(logs, "kafka_unavailable")
    assert ("KafkaConnectionError" if failure == "error" else "TimeoutError") in unreachable["error"]
    (again,) = _events(logs, "kafka_reachable_again")
    assert again["attempts"] >= 1
    assert again["down_seconds"] >= 0


async def test_the_broker_is_ready_only_when_every_reader_is(kafka: FakeKafka) -> None:
    """With two readers, one still connecting, the broker is not ready: that one would miss messages."""
    broker = _broker(kafka)
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the first reader is ready")
        kafka.start_failures = {"topic": 1_000_000}
        async with broker.receiving(Inbox().append):
            await kafka.until(lambda: kafka.start_failures["topic"] < 999_998, "two failed starts")
            assert not broker.is_ready()
            kafka.start_failures.clear()
            await kafka.until(broker.is_ready, "the second reader is ready too")


# --- starting the clients ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["topic", "producer", "consumer"])
async def test_clients_that_fail_to_start_are_retried_until_they_work(kafka: FakeKafka, kind: str) -> None:
    """Each failed start stops its clients and is retried after retry_interval until it works; the log
    says Kafka is unavailable once, and with the connection how long it was and after how many attempts."""
    kafka.start_failures = {kind: 2}
    broker = _broker(kafka)
    with capture_logs() as logs:
        async with broker.receiving(Inbox().append):
            await kafka.until(broker.is_ready, "the third start works")
    assert len(kafka.producers) == (1 if kind == "topic" else 3)
    assert len(kafka.consumers) == (3 if kind == "consumer" else 1)
    attempts = [(when, ready) for started, when, ready in kafka.start_attempts if started == kind]
    assert [ready for _when, ready in attempts] == [False, False, False]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(attempts)]
    assert all(gap >= RETRY * 0.99 for gap in gaps), gaps
    (failure,) = _events(logs, "kafka_unavailable")
    assert "KafkaConnectionError" in failure["error"]
    assert (failure["log_level"], failure["bootstrap"], failure["topic"]) == (
        "warning",
        "localhost:9092",
        TOPIC,
    )
    (connected,) = _events(logs, "kafka_connected")
    assert connected["attempts"] == 2
    assert connected["down_seconds"] >= round(RETRY, 1)
    assert broker.counters()["reconnects"] == 2
    assert all(producer.stopped for producer in kafka.producers)
    assert all(consumer.stopped for consumer in kafka.consumers)


async def test_kafka_absent_for_many_attempts_is_one_line_then_one_when_it_comes(kafka: FakeKafka) -> None:
    """Thirty failed starts in a row: `kafka_unavailable` once, not once an attempt."""
    kafka.start_failures = {"topic": 30}
    broker = _broker(kafka)
    with capture_logs() as logs:
        async with broker.receiving(Inbox().append):
            await kafka.until(broker.is_ready, "the 31st start works")
    events = _link_events(logs)
    assert events == ["kafka_unavailable", "kafka_connected"]
    assert _events(logs, "kafka_connected")[0]["attempts"] == 30


# --- where reading starts ------------------------------------------------------------------------


async def test_the_first_assignment_starts_at_the_receiving_time_else_at_the_end_asked_first(
    kafka: FakeKafka,
) -> None:
    """A partition starts at its first record since receiving began, else at the end asked before."""
    long_ago = now_ms() - LONG_AGO_MS
    for partition, old in ((0, 2), (1, 1), (2, 3)):
        for _ in range(old):
            kafka.append_message(partition, published_ms=long_ago)
    broker = _broker(kafka)
    inbox = Inbox()
    before = now_ms()
    async with broker.receiving(inbox.append):
        after = now_ms()
        # Published once receiving began, before this server's consumer reached Kafka.
        since_start = [kafka.append_message(1), kafka.append_message(1)]
        # And one appended between the two lookups: it must not fall between them.
        between: list[str] = []
        kafka.between_lookups = lambda: between.append(kafka.append_message(0))
        await kafka.until(broker.is_ready, "the broker is ready")
        later = kafka.append_message(2)
        await kafka.until(lambda: len(inbox) >= 4, "4 delivered")
        await kafka.probes_pass(2)
    (consumer,) = kafka.consumers
    steps = ("end_offsets", "offsets_for_times", "assign", "seek")
    lookups = [call.split(".")[1] for call in kafka.calls if call.split(".")[1] in steps]
    assert lookups[:6] == ["end_offsets", "offsets_for_times", "assign", "seek", "seek", "seek"]
    assert set(consumer.timestamps_asked) == {_tp(0), _tp(1), _tp(2)}
    (since,) = set(consumer.timestamps_asked.values())
    assert before <= since <= after
    assert consumer.seeks == {_tp(0): 2, _tp(1): 1, _tp(2): 3}
    assert _in_kafka_order(inbox.ids) == [*between, *since_start, later]


async def test_the_fake_consumer_catches_an_await_between_assign_and_seek(kafka: FakeKafka) -> None:
    """The check behind the previous test is real: a call or a loop turn between assign and seek is caught."""
    consumer = kafka.consumer(KafkaSettings(), "test")
    consumer.assign([_tp(0), _tp(1)])
    consumer.seek(_tp(0), 0)
    await consumer.end_offsets([_tp(0)])
    await asyncio.sleep(0)  # a turn of the loop, as any real await between them could take
    consumer.seek(_tp(1), 0)
    unseeked = "[TopicPartition(topic='minimess.test', partition=1)]"
    assert kafka.violations == [
        f"consumer1.end_offsets ran while {unseeked} were assigned but not seeked",
        f"{unseeked} not seeked before the loop turned",
    ]
    kafka.violations.clear()


# --- records that are not delivered --------------------------------------------------------------


async def test_delivered_messages_carry_their_record_offset_in_the_epoch_of_their_partition(
    kafka: FakeKafka,
) -> None:
    """The position is the record's offset, in the epoch of the topic's id and the partition."""
    broker = _broker(kafka)
    inbox = Inbox()
    async with broker.receiving(inbox.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.append(2, b"not an envelope", timestamp_type=CREATE_TIME)
        kafka.append_message(2)
        kafka.append_message(0)
        await kafka.until(lambda: len(inbox) >= 2, "2 delivered")
        topic_id = await kafka.topic_id(kafka.producers[0], TOPIC)
    assert sorted((message.position for message in inbox), key=str) == [
        Position(f"{topic_id}.0", 0),
        Position(f"{topic_id}.2", 1),
    ]


@pytest.mark.parametrize(
    ("kind", "append"),
    [
        ("short id", {"message_id": "p0-short"}),
        ("bad id", {"message_id": "has spaces, and more than 16"}),
        ("body over the limit as JSON", {"body": "\x01" * 20}),
        ("timestamp far ahead", {"published_ms": now_ms() + 3 * 86_400_000}),
        ("timestamp before 2020", {"published_ms": 1_000}),
    ],
)
async def test_records_no_client_could_have_published_are_skipped_and_counted_as_invalid(
    kafka: FakeKafka, kind: str, append: dict[str, Any]
) -> None:
    """A record is held to a client's rules: id format, body size once escaped, a plausible time."""
    # 20 control characters escape to 120 bytes: over a limit of 100 though 20 characters are not.
    broker = _broker(kafka, rules=RecordRules(max_body_bytes=100))
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            await kafka.until(broker.is_ready, "the broker is ready")
            kafka.append_message(0, **append)
            good = kafka.append_message(0)
            await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
    assert inbox.ids == [good], kind
    assert broker.counters()["invalid_records"] == 1
    (skipped,) = _events(logs, "kafka_record_skipped")
    assert (skipped["partition"], skipped["offset"]) == (0, 0)


async def test_records_that_are_no_envelope_are_logged_counted_and_skipped(kafka: FakeKafka) -> None:
    """Garbage, an empty value and a tombstone are skipped, logged where they lie; the next is read."""
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            await kafka.until(broker.is_ready, "the broker is ready")
            for value in (b"\xff\x00garbage", b"", None):
                kafka.append(1, value, timestamp_type=CREATE_TIME)
            good = kafka.append_message(1)
            await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
    assert inbox.ids == [good]
    assert broker.counters() == {
        "undecodable_records": 3,
        "invalid_records": 0,
        "unneeded_records": 0,
        "replays": 0,
        "reconnects": 0,
    }
    skipped = _events(logs, "kafka_record_skipped")
    assert [(entry["partition"], entry["offset"], entry["log_level"]) for entry in skipped] == [
        (1, offset, "warning") for offset in range(3)
    ]


async def test_a_failing_deliver_callback_does_not_restart_the_clients(kafka: FakeKafka) -> None:
    """A deliver that raises is logged as delivery_failed and the record is done; the clients stay.

    If it escaped, the supervisor would tear down and rebuild both Kafka clients (and report not
    ready) because of one server-side bug or one message the hub cannot render.
    """
    broker = _broker(kafka)
    attempts: list[str] = []

    def failing(message: Message) -> None:
        attempts.append(message.id)
        raise RuntimeError("server bug")

    with capture_logs() as logs:
        async with broker.receiving(failing):
            await kafka.until(broker.is_ready, "the broker is ready")
            ids = [kafka.append_message(0), kafka.append_message(0)]
            await kafka.until(lambda: len(attempts) == 2, "both records were handed over")
            await kafka.probes_pass(2)
            assert broker.is_ready()
    assert attempts == ids
    assert [entry["message_id"] for entry in _events(logs, "delivery_failed")] == ids
    assert _events(logs, "kafka_unavailable") == []
    assert (len(kafka.producers), len(kafka.consumers)) == (1, 1)


# --- a saved position that retention has deleted -------------------------------------------------


async def test_a_saved_position_deleted_by_retention_resumes_at_the_oldest_record_kept(
    kafka: FakeKafka,
) -> None:
    """Records kept after a deleted saved position are delivered, not skipped by a jump to the end."""
    broker = _broker(kafka)
    inbox = Inbox()
    async with broker.receiving(inbox.append):
        await kafka.until(broker.is_ready, "the broker is ready")
        first = kafka.append_message(0)
        await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
        # Appended and partly deleted before the consumer fetches again (after an outage, say).
        _deleted, *kept = [kafka.append_message(0) for _ in range(3)]
        kafka.delete_before(0, 2)
        await kafka.until(lambda: len(inbox) >= 3, "3 delivered")
        await kafka.probes_pass(4)
    assert inbox.ids == [first, *kept]
    assert len(kafka.consumers) == 1, f"the consumer was recreated {len(kafka.consumers) - 1} times"


async def test_a_saved_position_whose_records_are_all_deleted_is_not_a_stall(kafka: FakeKafka) -> None:
    """A consumer moved past deleted records to the end is caught up: it is not recreated again and again."""
    broker = _broker(kafka)
    inbox = Inbox()
    with capture_logs() as logs:
        async with broker.receiving(inbox.append):
            await kafka.until(broker.is_ready, "the broker is ready")
            first = kafka.append_message(0)
            await kafka.until(lambda: len(inbox) >= 1, "1 delivered")
            kafka.append_message(0)
            kafka.append_message(0)
            kafka.delete_before(0, 3)
            await kafka.probes_pass(8)
            after = kafka.append_message(0)
            await kafka.until(lambda: len(inbox) >= 2, "2 delivered")
    restarts = _events(logs, "kafka_unavailable")
    assert restarts == [], f"{len(restarts)} restarts, the first: {restarts[:1]}"
    assert len(kafka.consumers) == 1
    assert inbox.ids == [first, after]


# --- publishing ----------------------------------------------------------------------------------


async def test_publish_before_receiving_is_refused_at_once(kafka: FakeKafka) -> None:
    """Never receiving, hence never connected: publish raises BrokerUnavailable without waiting."""
    broker = _broker(kafka, publish_timeout=30.0)
    async with asyncio.timeout(scaled(1)):
        with pytest.raises(BrokerUnavailable):
            await broker.publish(_message())
    assert not broker.is_ready()
    assert kafka.calls == []


@pytest.mark.parametrize(
    ("acks", "error", "reason"),
    [
        ("error", PublishTimeout, "did not acknowledge .*broker went away"),
        ("hang", PublishTimeout, r"did not acknowledge within 0\.05 s"),
        ("full", BrokerUnavailable, r"did not take the message within 0\.05 s"),
        ("refuse", BrokerUnavailable, "refused the message: .*larger"),
    ],
)
async def test_a_publish_kafka_did_not_acknowledge_is_of_unknown_outcome_one_not_taken_is_refused(
    kafka: FakeKafka, acks: str, error: type[Exception], reason: str
) -> None:
    """Once the producer took the record it may still write it: a failed or missing ack is
    PublishTimeout. Before it took it nothing can reach Kafka: BrokerUnavailable (with no room in
    the producer, at the deadline)."""
    broker = _broker(kafka, publish_timeout=0.05)
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.acks = acks
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(scaled(2)):
            with pytest.raises(error, match=reason):
                await broker.publish(_message())
        if acks in ("hang", "full"):
            assert loop.time() - started >= 0.05
        # The deadline's cancellation is taken back: the task is not left being cancelled.
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        assert broker.is_ready(), "a refused publish is no outage"
    assert (len(kafka.producers), len(kafka.consumers)) == (1, 1)


async def test_a_send_that_keeps_the_deadlines_cancellation_to_itself_still_ends_at_the_deadline(
    kafka: FakeKafka,
) -> None:
    """Should a producer take the record after swallowing the deadline's cancellation, the task is
    not left being cancelled, and the publish, past its deadline, is of unknown outcome at once."""
    broker = _broker(kafka, publish_timeout=0.05)
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.acks = "stubborn"
        async with asyncio.timeout(scaled(2)):
            acknowledgement = await broker.hand_over(_message())
            with pytest.raises(PublishTimeout, match=r"did not acknowledge within 0\.05 s"):
                await acknowledgement
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0


async def test_a_publish_waiting_for_room_whose_task_is_cancelled_is_cancelled_not_refused(
    kafka: FakeKafka,
) -> None:
    """A connection closing cancels its publish while the producer has no room: the cancellation
    goes through as such, not as the deadline's BrokerUnavailable."""
    # A deadline far off: the cancellation is the task's own, whatever the machine's pace.
    broker = _broker(kafka, publish_timeout=scaled(30))
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.acks = "full"
        publishing = asyncio.create_task(broker.hand_over(_message()))
        await kafka.until(lambda: any(call.endswith(".send") for call in kafka.calls), "the send is waiting")
        publishing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publishing
        assert publishing.cancelled()


async def test_a_producer_whose_state_kafka_lost_is_replaced_and_publishing_resumes(kafka: FakeKafka) -> None:
    """OutOfOrderSequenceNumber fails every later send of that producer: a new one is made."""
    # Both answers come at once; a long deadline only keeps a busy machine's pause from being one.
    broker = _broker(kafka, publish_timeout=scaled(10))
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.acks = "sequence"
        with capture_logs() as logs, pytest.raises(PublishTimeout, match="OutOfOrderSequenceNumber"):
            await broker.publish(_message())
        kafka.acks = "ok"
        await kafka.until(lambda: len(kafka.producers) == 2 and broker.is_ready(), "a new producer, ready")
        await broker.publish(_message())
    assert kafka.producers[0].stopped
    assert [entry["event"] for entry in logs].count("kafka_producer_state_lost") == 1


async def test_hand_over_returns_once_the_producer_took_the_record_and_the_answer_comes_later(
    kafka: FakeKafka,
) -> None:
    """A pipelined publish: nothing waits for Kafka's ack until the acknowledgement is awaited."""
    broker = _broker(kafka, publish_timeout=0.05)
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        kafka.acks = "hang"
        acknowledgement = await broker.hand_over(_message())
        assert not acknowledgement.done()
        async with asyncio.timeout(scaled(2)):
            with pytest.raises(PublishTimeout, match=r"did not acknowledge within 0\.05 s"):
                await acknowledgement


async def test_a_record_kafka_acknowledged_but_not_read_back_by_the_deadline_is_a_publish_timeout(
    kafka: FakeKafka,
) -> None:
    """Written, but this server has not read it back (its consumer far behind): the outcome it
    can vouch for is unknown, and the error says which step was missing."""
    kafka.behaviours = [Behaviour(stall_after=0)]  # a consumer that returns nothing
    settings = KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS, publish_timeout=0.05)
    # Probes far apart: the stalled consumer is not replaced within the test.
    broker = KafkaBroker(settings, "eu-1", kafka, probe_interval=scaled(60), retry_interval=RETRY)
    kafka.readiness = broker.is_ready
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        async with asyncio.timeout(scaled(2)):
            with pytest.raises(PublishTimeout, match=r"acknowledged .* did not read it back within 0\.05 s"):
                await broker.publish(_message())
    assert len(kafka.records()) == 1


async def test_publishes_waiting_to_be_read_back_when_the_topic_is_recreated_do_not_hold_up_later_ones(
    kafka: FakeKafka,
) -> None:
    """Their records went with the old incarnation: they are answered of unknown outcome at once,
    and a publish to the new one is acknowledged as usual, not queued behind their old offsets."""
    kafka.behaviours = [Behaviour(one_per_probe=True)]  # the first consumer reads behind the acks
    broker = _broker(kafka, publish_timeout=scaled(10))
    partition = partition_of(Topic("news"), PARTITIONS)
    async with broker.receiving(Inbox().append):
        await kafka.until(broker.is_ready, "the broker is ready")
        for _ in range(5):
            kafka.append_message(partition)
        waiting = await broker.hand_over(_message())
        assert not waiting.done(), "read back already"
        old_id = kafka.incarnation_id
        kafka.delete_topic()
        await kafka.until(lambda: not broker.is_ready(), "the broker sees the topic gone")
        await kafka.create_topic(KafkaSettings(kafka_topic=TOPIC, kafka_partitions=PARTITIONS), "elsewhere")
        async with asyncio.timeout(scaled(5)):
            with pytest.raises(PublishTimeout, match="topic was recreated"):
                await waiting
            await kafka.until(broker.is_ready, "ready on the new incarnation")
            position = await broker.publish(_message())
    assert position == Position(epoch_of(kafka.incarnation_id, partition), 0)
    assert kafka.incarnation_id != old_id
