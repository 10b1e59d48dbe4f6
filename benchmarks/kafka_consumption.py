"""What a Kafka server that only consumes spends per message: two servers, publishers on the first.

usage: uv run python benchmarks/kafka_consumption.py --kafka-bootstrap HOST:PORT
           [--messages 20000] [--publishers 20] [--topics 10] [--other-topics 0] [--rounds 3]

Starts two `minimess serve --broker kafka` on a fresh Kafka topic (12 partitions); on the second,
one subscriber on each of --topics topics; on the first, --publishers connections publish
--messages messages round-robin over those topics as fast as they are acked (a window of 50 each),
plus as many again on --other-topics topics nobody subscribes to, when given. Prints, per round,
the messages per second the subscribers received and the second server's CPU per message it
delivered (from /proc, so the benchmark's own clients are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from statistics import median

from websockets.asyncio.client import ClientConnection, connect

TICKS = os.sysconf("SC_CLK_TCK")
WINDOW = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def servers(bootstrap: str, topic: str) -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    started = []
    try:
        for node in ("a", "b"):
            port = free_port()
            command = [sys.executable, "-m", "minimess", "serve", "--port", str(port), "--broker", "kafka",
                       "--kafka-bootstrap", bootstrap, "--kafka-topic", topic, "--node-id", node,
                       "--rate-limit", "0", "--tick", "0", "--log-level", "warning"]  # fmt: skip
            started.append((port, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
        for port, _ in started:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server on {port} not ready")
                time.sleep(0.2)
        yield started
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            process.wait(30)


async def client(port: int, uid: str, topics: list[str]) -> ClientConnection:
    path = f"/subscribe/id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)
    connection = await connect(f"ws://127.0.0.1:{port}{path}", max_queue=None)
    assert json.loads(await connection.recv())["type"] == "success"
    return connection


async def publisher(connection: ClientConnection, topics: list[str], count: int) -> None:
    window = asyncio.Semaphore(WINDOW)

    async def acks() -> None:
        for _ in range(count):
            frame = json.loads(await connection.recv())
            assert frame["type"] == "ack", frame
            window.release()

    reading = asyncio.create_task(acks())
    for n in range(count):
        await window.acquire()
        await connection.send(json.dumps({"type": "pub", "topic": topics[n % len(topics)], "body": "x" * 64}))
    await reading


async def one_round(args: argparse.Namespace) -> tuple[float, float]:
    topic = f"minimess.consumption.{uuid.uuid4().hex[:8]}"
    wanted = [f"room-{n}" for n in range(args.topics)]
    others = [f"other-{n}" for n in range(args.other_topics)]
    with servers(args.kafka_bootstrap, topic) as started:
        (a_port, _), (b_port, b_process) = started
        subscribers = [await client(b_port, f"sub-{n}", [name]) for n, name in enumerate(wanted)]
        publishers = [await client(a_port, f"pub-{n}", []) for n in range(args.publishers)]
        per_publisher = args.messages // args.publishers
        total = per_publisher * args.publishers
        # A warm-up message per topic, so that every partition is read before the clock starts.
        for name in wanted:
            await publishers[0].send(json.dumps({"type": "pub", "topic": name, "body": "warm"}))
            json.loads(await publishers[0].recv())
        for connection in subscribers:
            json.loads(await connection.recv())

        async def receive(connection: ClientConnection, expected: int) -> None:
            for _ in range(expected):
                await connection.recv()

        expected = [total // len(wanted) + (1 if n < total % len(wanted) else 0) for n in range(len(wanted))]
        cpu_before, started_at = cpu_seconds(b_process.pid), time.monotonic()
        jobs = [publisher(p, wanted, per_publisher) for p in publishers]
        if others:
            extra = [await client(a_port, f"other-pub-{n}", []) for n in range(args.publishers)]
            jobs += [publisher(p, others, per_publisher) for p in extra]
        await asyncio.gather(*jobs, *(receive(c, e) for c, e in zip(subscribers, expected, strict=True)))
        took = time.monotonic() - started_at
        cpu = cpu_seconds(b_process.pid) - cpu_before
        for connection in [*subscribers, *publishers]:
            await connection.close()
    return total / took, cpu / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka-bootstrap", required=True)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--publishers", type=int, default=20)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--other-topics", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--round-timeout", type=float, default=300.0, help="seconds a round may take before the run fails"
    )
    args = parser.parse_args()
    results = []
    for number in range(args.rounds):
        # Bounded: a server that never reaches Kafka would otherwise leave the warm-up waiting for ever.
        rate, cpu = asyncio.run(asyncio.wait_for(one_round(args), args.round_timeout))
        results.append((rate, cpu))
        print(f"round {number + 1}: {rate:,.0f} msg/s delivered, consuming server {cpu:.1f} µs per message")
    rates, cpus = [rate for rate, _ in results], [cpu for _, cpu in results]
    print(f"median: {median(rates):,.0f} msg/s, {median(cpus):.1f} µs per message")


if __name__ == "__main__":
    main()
