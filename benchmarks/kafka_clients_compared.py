"""What each Kafka client costs per record on its own: aiokafka against confluent-kafka, side by side.

usage: uv run --with confluent-kafka python benchmarks/kafka_clients_compared.py
           --kafka-bootstrap HOST:PORT [--records 100000] [--value-bytes 150] [--rounds 3]
           [--window 1000] [--paced-records 10000] [--rate 2000] [--clients aiokafka,confluent]
           [--scenarios produce,drain,paced] [--json]

confluent-kafka is not a dependency of minimess: `--with` installs it for this run only (without
it, `--clients aiokafka` still runs). Start a Kafka with `scripts/kafka start --dir /tmp/kc --port 0`
(it prints HOST:PORT) and stop it with `scripts/kafka stop --dir /tmp/kc`.

Each client is configured as minimess configures aiokafka (src/minimess/adapters/kafka/clients.py):
acks=all, idempotence, linger 0, no consumer group, partitions assigned by hand, a fetch that waits
at most 100 ms. Each measurement runs in a process of its own, so its CPU time (user + system, all
threads: librdkafka does its work in threads of its own) is the client's and the loop's alone:

- produce: --records records over the 12 partitions of a fresh topic, as fast as the client
  takes them, --window records in flight, each record's acknowledgement awaited;
- drain: the same number of records, already in a fresh topic, read from offset 0 of every partition;
- paced: --paced-records records read while another process produces them at --rate records/s,
  timed from the first record to the last (a consumer at a trickle sends many small fetches).

How confluent-kafka meets asyncio here: the producer is confluent_kafka.Producer, whose produce()
only queues the record (it does not block); one thread serves the delivery reports with poll() and
settles their futures on the event loop, one hand-over per poll(), not per record.
confluent_kafka.aio.AIOProducer was not used: it holds records in a Python buffer until
batch_size of them (default 1,000) or buffer_timeout (1 s) have gathered, which a chat message must
not wait for (linger 0). The consumer is confluent_kafka.Consumer, called from one worker thread
(run_in_executor): poll(1 s) for the first record, then consume(999, 0) for what else is there, one
hand-over per call. Consumer.consume(num_messages, timeout) alone, as confluent_kafka.aio.AIOConsumer
offers it, waits for num_messages records or the timeout, so at a trickle it would hold records
for up to the timeout where aiokafka's getmany returns as soon as one is there.

In paced mode the feeder puts its clock in each value, and the consumer reports the delay to it
(p50, p99): neither client's CPU figure is bought by holding records back.

Rounds alternate the order of the clients; the table gives medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from statistics import median
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PARTITIONS = 12
SCENARIOS = ("produce", "drain", "paced")
CLIENTS = ("aiokafka", "confluent")
# Long enough for a round on a loaded machine; a worker that takes longer has hung.
WORKER_TIMEOUT = 600.0
# How many records one confluent consume() call may return: aiokafka's getmany returns what its
# fetches brought, unbounded, so this only needs to be large enough not to add hand-overs.
CONSUME_BATCH = 1000
# The paced feeder's clock at sending, at the start of each value, for the delay to the consumer.
SENT_AT = struct.Struct("!d")


def key_of(index: int) -> bytes:
    # Keys are minimess topic names: a hundred rooms, as many records each.
    return f"room-{index % 100}".encode()


# -- what runs in a worker process ---------------------------------------------------------------


class Measure:
    """CPU time (all threads of this process) and wall time, from `start()` to `stop()`."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def start(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def stop(self, records: int, returns: int = 0) -> dict[str, float]:
        """`returns`: how many of the consumer's calls brought records (how small its fetches were)."""
        cpu = time.process_time() - self.cpu
        wall = time.perf_counter() - self.wall
        return {"records": records, "cpu_s": cpu, "wall_s": wall, "returns": returns}


class Window:
    """At most `size` records in flight: `enter` awaits the oldest acknowledgement when it is full.

    Awaiting the oldest costs one await per record, where waiting for any would cost a callback
    on every record in flight; acks come back in about the order records were sent.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._acks: deque[Awaitable[Any]] = deque()

    async def enter(self) -> None:
        if len(self._acks) >= self._size:
            await self._acks.popleft()

    def add(self, ack: Awaitable[Any]) -> None:
        self._acks.append(ack)

    async def drained(self) -> None:
        while self._acks:
            await self._acks.popleft()


async def produce_aiokafka(
    bootstrap: str, topic: str, records: int, value: bytes, window: int
) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    try:
        await producer.partitions_for(topic)
        window_ = Window(window)
        measure = Measure()
        measure.start()
        for index in range(records):
            await window_.enter()
            window_.add(
                await producer.send(topic, value=value, key=key_of(index), partition=index % PARTITIONS)
            )
        await window_.drained()
        return measure.stop(records)
    finally:
        await producer.stop()


async def produce_confluent(
    bootstrap: str, topic: str, records: int, value: bytes, window: int
) -> dict[str, float]:
    import confluent_kafka  # type: ignore[import-not-found, unused-ignore]  # installed by `uv run --with`

    loop = asyncio.get_running_loop()
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
        }
    )
    reports: list[tuple[asyncio.Future[None], Any]] = []

    def settle(batch: list[tuple[asyncio.Future[None], Any]]) -> None:
        for future, error in batch:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(confluent_kafka.KafkaException(error))

    def report(future: asyncio.Future[None]) -> Callable[[Any, Any], None]:
        def on_delivery(error: Any, _message: Any) -> None:
            reports.append((future, error))

        return on_delivery

    stopping = threading.Event()

    def serve_reports() -> None:
        # The delivery callbacks run inside poll(), on this thread; the futures belong to the loop,
        # so the reports of one poll() are handed over together.
        while not stopping.is_set():
            producer.poll(0.1)
            if reports:
                batch = reports[:]
                del reports[: len(batch)]
                loop.call_soon_threadsafe(settle, batch)

    producer.list_topics(topic, timeout=30)
    server = threading.Thread(target=serve_reports, daemon=True)
    server.start()
    try:
        window_ = Window(window)
        measure = Measure()
        measure.start()
        for index in range(records):
            await window_.enter()
            future: asyncio.Future[None] = loop.create_future()
            producer.produce(
                topic,
                value=value,
                key=key_of(index),
                partition=index % PARTITIONS,
                on_delivery=report(future),
            )
            window_.add(future)
        await window_.drained()
        return measure.stop(records)
    finally:
        stopping.set()
        await asyncio.to_thread(server.join)
        producer.flush(30)


async def consume_aiokafka(bootstrap: str, topic: str, records: int, paced: bool) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        measure = Measure()
        measure.start()
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, 0)
        announce_ready()
        seen = returns = 0
        before = 0  # in paced mode, the records of the first fetch: they came before the clock started
        delays = Delays(paced)
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                delays.add([record.value for record in batch if record.key])
                seen += len(batch)
            returns += bool(batches)
            if paced and before == 0 and seen:
                measure.start()
                before, returns = seen, 0
        return measure.stop(seen - before, returns) | delays.summary()
    finally:
        await consumer.stop()


async def consume_confluent(bootstrap: str, topic: str, records: int, paced: bool) -> dict[str, float]:
    import confluent_kafka  # type: ignore[import-not-found, unused-ignore]  # installed by `uv run --with`

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by the constructor; with assign() and no commits no group is ever joined.
            "group.id": f"unused-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )

    def take() -> list[Any]:
        # consume(n, timeout) waits for n records or the timeout, which would hold a record at a
        # trickle for up to the timeout: wait for one, then take what is there, as getmany does.
        first = consumer.poll(1.0)
        return [] if first is None else [first, *consumer.consume(CONSUME_BATCH - 1, 0)]

    loop = asyncio.get_running_loop()
    # librdkafka's consumer is not safe to call from two threads at once: one thread makes every call.
    thread = ThreadPoolExecutor(max_workers=1)
    try:
        measure = Measure()
        measure.start()
        consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        announce_ready()
        seen = returns = 0
        before = 0  # in paced mode, the records of the first call: they came before the clock started
        delays = Delays(paced)
        while seen < records:
            batch = await loop.run_in_executor(thread, take)
            for message in batch:
                if message.error() is not None:
                    raise confluent_kafka.KafkaException(message.error())
            delays.add([message.value() for message in batch if message.key()])
            seen += len(batch)
            returns += bool(batch)
            if paced and before == 0 and seen:
                measure.start()
                before, returns = seen, 0
        return measure.stop(seen - before, returns) | delays.summary()
    finally:
        await loop.run_in_executor(thread, consumer.close)
        thread.shutdown()


class Delays:
    """In paced mode, how long each record took from the feeder's clock to the consumer's hands.

    Both clients are asked for records as soon as there are any; the delays show that neither buys
    its CPU figure by holding records back.
    """

    def __init__(self, paced: bool) -> None:
        self._paced = paced
        self._delays: list[float] = []

    def add(self, values: list[bytes]) -> None:
        if self._paced:
            now = time.time()
            self._delays.extend(now - SENT_AT.unpack_from(value)[0] for value in values)

    def summary(self) -> dict[str, float]:
        if not self._delays:
            return {}
        ordered = sorted(self._delays)
        return {
            "delay_p50_ms": ordered[len(ordered) // 2] * 1000,
            "delay_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        }


def announce_ready() -> None:
    print("ready", flush=True)


async def produce_paced(bootstrap: str, topic: str, records: int, value: bytes, rate: float) -> None:
    """Feeds the paced consumer; always aiokafka, so both consumers read the same stream.

    Every millisecond it sends the records due by then, so that its own cost does not slow it
    below the rate on a loaded machine.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        acks = []
        sent = 0
        while sent < records:
            due = min(records, int((loop.time() - start) * rate) + 1)
            for index in range(sent, due):
                stamped = SENT_AT.pack(time.time()) + value[SENT_AT.size :]
                acks.append(
                    await producer.send(topic, value=stamped, key=key_of(index), partition=index % PARTITIONS)
                )
            sent = due
            await asyncio.sleep(0.001)
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def run_worker(args: argparse.Namespace) -> None:
    value = os.urandom(args.value_bytes)
    result: dict[str, float] | None = None
    if args.worker == "produce":
        produce = produce_aiokafka if args.client == "aiokafka" else produce_confluent
        result = asyncio.run(produce(args.kafka_bootstrap, args.topic, args.records, value, args.window))
    elif args.worker in ("drain", "paced"):
        consume = consume_aiokafka if args.client == "aiokafka" else consume_confluent
        result = asyncio.run(consume(args.kafka_bootstrap, args.topic, args.records, args.worker == "paced"))
    elif args.worker == "feed":
        asyncio.run(produce_paced(args.kafka_bootstrap, args.topic, args.records, value, args.rate))
    if result is not None:
        print(json.dumps(result), flush=True)


# -- the driver ----------------------------------------------------------------------------------


def worker_command(args: argparse.Namespace, worker: str, client: str, topic: str, records: int) -> list[str]:
    return [
        sys.executable, __file__, "--worker", worker, "--client", client, "--topic", topic,
        "--kafka-bootstrap", args.kafka_bootstrap, "--records", str(records),
        "--value-bytes", str(args.value_bytes), "--window", str(args.window), "--rate", str(args.rate),
    ]  # fmt: skip


async def fresh_topic(bootstrap: str) -> str:
    topic = f"clients-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    return topic


def result_of(process: subprocess.Popen[str]) -> dict[str, float]:
    try:
        output, _ = process.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"worker {process.args!r} exited with {process.returncode}")
    return dict(json.loads(output.strip().splitlines()[-1]))


def run_one(args: argparse.Namespace, scenario: str, client: str, records: int) -> dict[str, float]:
    topic = asyncio.run(fresh_topic(args.kafka_bootstrap))
    if scenario == "produce":
        worker = subprocess.Popen(
            worker_command(args, "produce", client, topic, records), stdout=subprocess.PIPE, text=True
        )
        return result_of(worker)
    if scenario == "drain":
        filler = subprocess.Popen(
            worker_command(args, "produce", "aiokafka", topic, records), stdout=subprocess.PIPE, text=True
        )
        result_of(filler)
        worker = subprocess.Popen(
            worker_command(args, "drain", client, topic, records), stdout=subprocess.PIPE, text=True
        )
        return result_of(worker)
    worker = subprocess.Popen(
        worker_command(args, "paced", client, topic, records), stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        worker.kill()
        raise RuntimeError("the paced consumer did not start")
    feeder = subprocess.Popen(worker_command(args, "feed", client, topic, records), stdout=subprocess.DEVNULL)
    try:
        return result_of(worker)
    finally:
        feeder.wait(timeout=WORKER_TIMEOUT)


def records_for(args: argparse.Namespace, scenario: str) -> int:
    return int(args.paced_records if scenario == "paced" else args.records)


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def versions(clients: list[str]) -> dict[str, str]:
    import aiokafka

    found = {"python": sys.version.split()[0], "aiokafka": aiokafka.__version__}
    if "confluent" in clients:
        import confluent_kafka  # type: ignore[import-not-found, unused-ignore]  # installed by `uv run --with`

        found["confluent-kafka"] = str(confluent_kafka.__version__)
        found["librdkafka"] = confluent_kafka.libversion()[0]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka-bootstrap", required=True, help="HOST:PORT of a running Kafka")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=150, help="the size of a typical envelope")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=1000, help="records in flight while producing")
    parser.add_argument("--paced-records", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000, help="records/s of the paced producer")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--worker", choices=(*SCENARIOS, "feed"), help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    clients = [c for c in args.clients.split(",") if c]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name in clients:
        if name not in CLIENTS:
            parser.error(f"unknown client {name}")
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name}")
    meta: dict[str, Any] = {"versions": versions(clients), "load_before": load_average(), **{
        k: getattr(args, k) for k in ("records", "value_bytes", "rounds", "window", "paced_records", "rate")
    }}  # fmt: skip
    # A fresh Kafka answers slowly until its JIT has warmed up: one small unreported round first.
    for scenario in scenarios:
        for client in clients:
            run_one(args, scenario, client, max(1000, records_for(args, scenario) // 10))
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds):
        order = clients if number % 2 == 0 else clients[::-1]
        for scenario in scenarios:
            for client in order:
                result = run_one(args, scenario, client, records_for(args, scenario))
                rounds.append({"round": number + 1, "scenario": scenario, "client": client, **result})
                print(f"round {number + 1} {scenario:<8} {client:<10} {describe(result)}", file=sys.stderr)
    meta["load_after"] = load_average()
    summary = summarise(rounds, scenarios, clients)
    if args.json:
        print(json.dumps({"meta": meta, "summary": summary, "rounds": rounds}, indent=2))
    else:
        print_table(meta, summary)


def per_record_us(result: dict[str, float]) -> float:
    return result["cpu_s"] / result["records"] * 1e6


def rate_of(result: dict[str, float]) -> float:
    return result["records"] / result["wall_s"]


def per_return(result: dict[str, float]) -> float:
    return result["records"] / result["returns"] if result["returns"] else 0.0


def describe(result: dict[str, float]) -> str:
    batches = f" {per_return(result):7.1f} records per consumer call" if result["returns"] else ""
    return f"{per_record_us(result):7.1f} µs CPU/record {rate_of(result):9.0f} records/s{batches}"


def summarise(rounds: list[dict[str, Any]], scenarios: list[str], clients: list[str]) -> list[dict[str, Any]]:
    summary = []
    for scenario in scenarios:
        for client in clients:
            mine = [r for r in rounds if r["scenario"] == scenario and r["client"] == client]
            summary.append(
                {
                    "scenario": scenario,
                    "client": client,
                    "cpu_us_per_record": median(per_record_us(r) for r in mine),
                    "records_per_s": median(rate_of(r) for r in mine),
                    "records_per_consumer_call": median(per_return(r) for r in mine),
                    "delay_p50_ms": median(r.get("delay_p50_ms", 0.0) for r in mine),
                    "delay_p99_ms": median(r.get("delay_p99_ms", 0.0) for r in mine),
                    "cpu_us_per_record_rounds": [round(per_record_us(r), 1) for r in mine],
                }
            )
    return summary


def print_table(meta: dict[str, Any], summary: list[dict[str, Any]]) -> None:
    print(", ".join(f"{name} {version}" for name, version in meta["versions"].items()))
    loads = f"load average before {meta['load_before']}, after {meta['load_after']}"
    print(f"{loads}; medians of {meta['rounds']} rounds")
    print(
        "| scenario | client | CPU per record (µs) | records/s | records per consumer call "
        "| delay p50 / p99 (ms) | rounds (µs) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for row in summary:
        rounds = ", ".join(f"{v:.1f}" for v in row["cpu_us_per_record_rounds"])
        per_call = f"{row['records_per_consumer_call']:.1f}" if row["records_per_consumer_call"] else ""
        delays = f"{row['delay_p50_ms']:.1f} / {row['delay_p99_ms']:.1f}" if row["delay_p99_ms"] else ""
        print(
            f"| {row['scenario']} | {row['client']} | {row['cpu_us_per_record']:.1f} | "
            f"{row['records_per_s']:,.0f} | {per_call} | {delays} | {rounds} |"
        )


if __name__ == "__main__":
    main()
