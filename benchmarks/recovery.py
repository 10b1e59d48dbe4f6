"""Recovery speed, and what a storm of recoveries costs everybody else.

usage: uv run python -m benchmarks.recovery [--missed 1000] [--rounds 5] [--broker memory --broker kafka]
       uv run python -m benchmarks.recovery --storm [--rounds 3]

For each broker and round: a publisher puts N messages on a fresh topic while a client is away;
the client comes back with `sub` + `since` and the time from sending the `sub` to receiving the
last replayed message is taken. memory: one server, replayed from its history. kafka: two
servers on a local Kafka; the client comes back on the second one, started with
`--history-size 1`, so the messages are read back from Kafka itself. Medians, min and max over
the rounds are printed. Starts its own Kafka through scripts/kafka in a temporary folder.

--storm: `minimess bench --rate 20` (1,000 subscribers) against a memory server with its default
rate limit, alternately alone and beside one client that first asks for the recovery of 100
topics at once (10 missed messages each) and then, every second, leaves a quarter of them and
recovers them again; the honest subscribers' latency p50/p99 and the server's
CPU per delivery are printed for both, medians of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess, wait_status

WITHIN = 60.0


async def frame(connection: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        document: dict[str, Any] = json.loads(await connection.recv())
        if document["type"] == kind:
            return document
        if document["type"] == "error":
            raise RuntimeError(document)


async def client(server: ServerProcess, uid: str) -> ClientConnection:
    connection = await connect(server.url(f"/subscribe/id:{uid}"), max_size=2**24, open_timeout=WITHIN)
    await frame(connection, "success")
    return connection


async def one_round(publish_on: ServerProcess, recover_on: ServerProcess, missed: int) -> float:
    """Seconds from the `sub` with `since` to the last of `missed` replayed messages."""
    room = f"room-{uuid.uuid4().hex[:8]}"
    publisher = await client(publish_on, "publisher")
    await publisher.send(json.dumps({"type": "pub", "topic": room, "body": "before", "ref": "before"}))
    before = await frame(publisher, "ack")
    # A watcher on the recovering server says when it has received everything.
    watcher = await client(recover_on, "watcher")
    await watcher.send(json.dumps({"type": "sub", "topic": room}))
    await frame(watcher, "subscribed")
    body = "x" * 64
    for start in range(0, missed, 100):
        for n in range(start, min(start + 100, missed)):
            await publisher.send(json.dumps({"type": "pub", "topic": room, "body": body, "ref": str(n)}))
        for _ in range(start, min(start + 100, missed)):
            await frame(publisher, "ack")
    for _ in range(missed):
        await frame(watcher, "message")
    comer = await client(recover_on, "comer")
    since = {"epoch": before["epoch"], "offset": before["offset"]}
    started = time.perf_counter()
    await comer.send(json.dumps({"type": "sub", "topic": room, "since": since}))
    subscribed = await frame(comer, "subscribed")
    if not subscribed["recovered"]:
        raise RuntimeError(f"not recovered: {subscribed}")
    for _ in range(missed):
        await frame(comer, "message")
    took = time.perf_counter() - started
    await asyncio.gather(publisher.close(), watcher.close(), comer.close())
    return took


@asynccontextmanager
async def servers(broker: str, folder: Path) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    if broker == "memory":
        server = ServerProcess("--tick", "0", "--rate-limit", "0").start()
        try:
            yield server, server
        finally:
            server.stop()
        return
    kafka = KafkaProcess(folder / "kafka").start()
    topic = fresh_kafka_topic()
    s1 = ServerProcess(*kafka_serve_args(kafka, topic, "s1"), "--tick", "0", "--rate-limit", "0").start()
    s2 = ServerProcess(
        *kafka_serve_args(kafka, topic, "s2"), "--tick", "0", "--rate-limit", "0", "--history-size", "1"
    ).start()
    try:
        for server in (s1, s2):
            await asyncio.to_thread(wait_status, server, "/readyz", 200, WITHIN)
        yield s1, s2
    finally:
        s1.stop()
        s2.stop()
        kafka.stop()


async def run(brokers: list[str], missed: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for broker in brokers:
            async with servers(broker, Path(folder)) as (publish_on, recover_on):
                await one_round(publish_on, recover_on, 10)  # warm up
                times = [await one_round(publish_on, recover_on, missed) for _ in range(rounds)]
            print(
                f"{broker:7} {missed} missed: median {statistics.median(times) * 1000:8.1f} ms"
                f"  min {min(times) * 1000:8.1f}  max {max(times) * 1000:8.1f}  ({rounds} rounds)"
            )


STORM_TOPICS = 100
STORM_MISSED = 10


async def prepare_storm(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """STORM_TOPICS topics of STORM_MISSED + 1 messages each; the position of each one's first."""
    first: dict[str, dict[str, Any]] = {}
    for n in range(STORM_TOPICS):
        # A connection per topic: its 11 publishes stay within one connection's burst.
        publisher = await client(server, f"storm-publisher-{n}")
        for m in range(STORM_MISSED + 1):
            await publisher.send(json.dumps({"type": "pub", "topic": f"storm-{n}", "body": "x" * 64}))
            ack = await frame(publisher, "ack")
            if m == 0:
                first[f"storm-{n}"] = {"epoch": ack["epoch"], "offset": ack["offset"]}
        await publisher.close()
    return first


async def storm(server: ServerProcess, first: dict[str, dict[str, Any]], stop: asyncio.Event) -> int:
    """One client: it asks for the recovery of every topic at once, then every second leaves a
    quarter of them and asks for their recovery again, until `stop`; how many recoveries it got."""
    greedy = await client(server, "greedy")
    topics = list(first)
    recoveries = await asks(greedy, topics, first, leave=False)
    batch_size = STORM_TOPICS // 4
    loop = asyncio.get_running_loop()
    # Pacing: the first burst spent the rate limit's tokens, and a refused frame would go
    # unanswered here (a rate_limited error names no ref); a second refills them.
    await asyncio.sleep(1.0)
    while not stop.is_set():
        started = loop.time()
        batch = topics[recoveries % STORM_TOPICS :][:batch_size]
        recoveries += await asks(greedy, batch, first, leave=True)
        # Paced under the rate limit, as a client that wants to be served must be.
        await asyncio.sleep(max(0.0, 1.0 - (loop.time() - started)))
    await greedy.close()
    return recoveries


async def asks(
    connection: ClientConnection, topics: list[str], first: dict[str, dict[str, Any]], leave: bool
) -> int:
    """Send a `sub` with `since` (after an `unsub` if `leave`) for each topic; how many were answered
    `recovered` once each has its answer (replays in between are read and passed over)."""
    for topic in topics:
        if leave:
            await connection.send(json.dumps({"type": "unsub", "topic": topic}))
        await connection.send(
            json.dumps({"type": "sub", "topic": topic, "since": first[topic], "ref": topic})
        )
    answered = recovered = 0
    while answered < len(topics):
        document: dict[str, Any] = json.loads(await connection.recv())
        if document["type"] == "subscribed" or (document["type"] == "error" and document["ref"] in first):
            answered += 1
            recovered += document.get("recovered") is True
    return recovered


async def bench_round(server: ServerProcess) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "minimess", "bench", "--target", server.url(""), "--rounds", "1",
            "--baseline", "none", "--rate", "20", "--json", out.name,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await process.wait()
        text = await asyncio.to_thread(Path(out.name).read_text)
        median: dict[str, float] = json.loads(text)["servers"]["minimess"]["median"]
        return median


async def run_storm(rounds: int) -> None:
    server = ServerProcess("--tick", "0").start()
    try:
        first = await prepare_storm(server)
        figures: dict[str, list[dict[str, float]]] = {"alone": [], "beside the recovering client": []}
        stormed = 0
        for _ in range(rounds):
            figures["alone"].append(await bench_round(server))
            stop = asyncio.Event()
            storming = asyncio.create_task(storm(server, first, stop))
            figures["beside the recovering client"].append(await bench_round(server))
            stop.set()
            stormed += await storming
        for name, rows in figures.items():
            p50, p99, cpu = (
                statistics.median(row[key] for row in rows)
                for key in ("latency_p50_ms", "latency_p99_ms", "cpu_us_per_delivery")
            )
            print(f"{name:30} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  cpu/delivery {cpu:6.2f} us")
        print(f"recoveries during the storm rounds: {stormed}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--broker", action="append", choices=["memory", "kafka"])
    parser.add_argument("--storm", action="store_true", help="latency of others beside a recovery storm")
    args = parser.parse_args()
    if args.storm:
        asyncio.run(run_storm(args.rounds))
    else:
        asyncio.run(run(args.broker or ["memory", "kafka"], args.missed, args.rounds))


if __name__ == "__main__":
    main()
