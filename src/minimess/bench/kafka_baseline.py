"""The Kafka yardstick: a bare websockets server that publishes through aiokafka and fans out what it reads.

    python -m minimess.bench.kafka_baseline PORT BOOTSTRAP TOPIC

Several of them on one Kafka topic act as one service, as `minimess serve --broker kafka` servers
do, and do the least that takes, with the same Kafka clients configured as minimess configures
them (acks=all, idempotence, linger 0; no consumer group, every partition assigned by hand, a
fetch that waits at most 100 ms):

- a `pub` becomes a record whose key is the topic and whose value is the `message` frame itself,
  and its `ack` goes out when Kafka acknowledges it (an `error` if Kafka refused it), in the order
  Kafka answers;
- every record read is sent as it is to the topic's subscribers here (`websockets.broadcast`).

The Kafka topic is created with 12 partitions (as many as minimess's default) unless it exists,
and every partition it has is read; the bench names it after minimess's, `<--kafka-topic>.bare`,
and leaves it in place, as it leaves minimess's.

Nothing is checked, decoded, positioned, kept for recovery or bounded: it is the floor that
websockets and aiokafka set on this machine, under minimess's Kafka path. Its figures say how much
of minimess's CPU per message the libraries take, and how much is minimess's own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from websockets.asyncio.server import ServerConnection, broadcast, serve

from minimess.bench.baseline import message_for, subscribed, subscribers

# As many as a topic minimess creates has (`--kafka-partitions`' default).
PARTITIONS = 12
# Kafka's answer to creating a topic that exists: the other servers of the run race to create it.
TOPIC_ALREADY_EXISTS = 36


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
    finally:
        await admin.close()
    # Kafka answers a refusal in the response; aiokafka raises nothing for it.
    for _name, code, *_ in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            sys.exit(f"cannot create the Kafka topic {topic}: error code {code}")


async def read_and_fan_out(consumer: AIOKafkaConsumer) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=1000)
        for records in batches.values():
            for record in records:
                # Both set by handle() below: the key the topic, the value the frame.
                assert record.key is not None
                assert record.value is not None
                # The value's bytes, as they are, in a text frame.
                broadcast(subscribers.get(record.key.decode(), ()), record.value, text=True)


def answer(
    connection: ServerConnection, ref: object, message_id: str
) -> Callable[[asyncio.Future[Any]], None]:
    """What tells the client how its publish went: an ack, or an error the bench counts."""

    def send(delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            document = {"type": "error", "ref": ref, "code": "broker_unavailable"}
        else:
            document = {"type": "ack", "ref": ref, "id": message_id}
        broadcast((connection,), json.dumps(document))

    return send


def handler(producer: AIOKafkaProducer, kafka_topic: str) -> Any:
    async def handle(connection: ServerConnection) -> None:
        async with subscribed(connection):
            async for data in connection:
                frame = json.loads(data)
                message = message_for(frame)
                delivery = await producer.send(
                    kafka_topic, json.dumps(message).encode(), key=frame["topic"].encode()
                )
                # Pipelined: the next frame is read at once, and the answer goes out when Kafka's does.
                delivery.add_done_callback(answer(connection, frame.get("ref"), message["id"]))

    return handle


async def main(port: int, bootstrap: str, kafka_topic: str) -> None:
    await create_topic(bootstrap, kafka_topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await producer.start()
    await consumer.start()
    # Every partition the topic has, however many that is (it may have been made before).
    numbers = await producer.partitions_for(kafka_topic)
    partitions = [TopicPartition(kafka_topic, number) for number in sorted(numbers)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    # Listen only once every position is known: a message published after this is read.
    for partition in partitions:
        await consumer.position(partition)
    reader = asyncio.create_task(read_and_fan_out(consumer))
    try:
        async with serve(handler(producer, kafka_topic), "127.0.0.1", port, compression=None, max_queue=None):
            await reader
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m minimess.bench.kafka_baseline PORT BOOTSTRAP TOPIC")
    # The event loop minimess runs on by default (`--loop auto`): uvloop where it is installed.
    loop_factory = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            runner.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
        except KafkaError as error:
            # One line, which the bench shows as the reason this server ended.
            sys.exit(f"bare Kafka server: cannot use Kafka at {sys.argv[2]}: {error}")
