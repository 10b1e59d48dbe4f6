"""Which aiokafka settings decide minimess's Kafka latency: one producer, one consumer, 100 msg/s.

usage: uv run python benchmarks/kafka_client_settings.py [--messages 1000] [--rate 100]

Starts its own Kafka (scripts/kafka, in a temporary folder) and measures, for each setting
tried, the producer's ack time and the produce-to-consume latency, as minimess uses the clients
(acks=all, idempotence, a consumer without a group reading every partition).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BASE_PRODUCER: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 0}
BASE_CONSUMER: dict[str, Any] = {"fetch_max_wait_ms": 100}
VARIANTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimess (acks=all, linger 0, fetch wait 100)", {}, {}),
    ("fetch_max_wait_ms=500 (aiokafka default)", {}, {"fetch_max_wait_ms": 500}),
    ("fetch_max_wait_ms=10", {}, {"fetch_max_wait_ms": 10}),
    ("linger_ms=5", {"linger_ms": 5}, {}),
    ("linger_ms=20", {"linger_ms": 20}, {}),
    ("acks=1, no idempotence", {"acks": 1, "enable_idempotence": False}, {}),
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run(
    bootstrap: str,
    producer_options: dict[str, Any],
    consumer_options: dict[str, Any],
    count: int,
    rate: float,
) -> str:
    topic = f"bench-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **{**BASE_PRODUCER, **producer_options})
    await producer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **{**BASE_CONSUMER, **consumer_options},
    )
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    latencies: list[float] = []
    acks: list[float] = []

    async def consume() -> None:
        while len(latencies) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.time()
            for records in batches.values():
                latencies.extend((now - float(record.value.decode())) * 1000 for record in records)

    consuming = asyncio.create_task(consume())
    start = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent = time.time()
        await (await producer.send(topic, value=repr(sent).encode(), key=b"room"))
        acks.append((time.time() - sent) * 1000)
    await asyncio.wait_for(consuming, 30)
    await producer.stop()
    await consumer.stop()
    return (
        f"ack p50 {percentile(acks, 0.5):5.1f} p99 {percentile(acks, 0.99):5.1f} ms | "
        f"end to end p50 {percentile(latencies, 0.5):5.1f} p99 {percentile(latencies, 0.99):5.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kafka_dir = str(Path(folder) / "kafka")
        script = [sys.executable, str(ROOT / "scripts/kafka")]
        bootstrap = subprocess.run(
            [*script, "start", "--port", "0", "--dir", kafka_dir], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            # A fresh Kafka answers slowly until its JIT has warmed up: one unreported round first.
            asyncio.run(run(bootstrap, {}, {}, args.messages, args.rate))
            for name, producer_options, consumer_options in VARIANTS:
                result = asyncio.run(
                    run(bootstrap, producer_options, consumer_options, args.messages, args.rate)
                )
                print(f"{name:<48} {result}", flush=True)
        finally:
            subprocess.run([*script, "stop", "--dir", kafka_dir], check=False, capture_output=True)


if __name__ == "__main__":
    main()
