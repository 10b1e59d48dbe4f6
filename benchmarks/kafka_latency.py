"""End-to-end latency between two minimess servers on Kafka: publish on one, receive on both.

usage: uv run python benchmarks/kafka_latency.py [--rate 100] [--seconds 20] [--subscribers 10]

Starts its own Kafka (scripts/kafka, in a temporary folder) and two `minimess serve --broker
kafka` processes; one publisher on server 1 publishes at a steady rate, subscribers on both servers
record publish-to-receive latency from the send time carried in each body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on {port} not ready")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure(ports: list[int], rate: float, seconds: float, subscribers: int) -> dict[int, list[float]]:
    latencies: dict[int, list[float]] = {port: [] for port in ports}
    total = int(rate * seconds)

    async def subscribe(port: int, index: int) -> ClientConnection:
        connection = await connect(f"ws://127.0.0.1:{port}/subscribe/id:s{index}/topic:bench")
        await connection.recv()
        return connection

    async def consume(port: int, connection: ClientConnection) -> None:
        received = 0
        while received < total:
            frame = json.loads(await connection.recv())
            if frame["type"] == "message":
                received += 1
                latencies[port].append((time.time() - float(frame["body"])) * 1000)

    connections = [(port, await subscribe(port, i)) for port in ports for i in range(subscribers)]
    consumers = [asyncio.create_task(consume(port, c)) for port, c in connections]
    async with connect(f"ws://127.0.0.1:{ports[0]}/subscribe/id:publisher") as publisher:
        await publisher.recv()
        start = time.monotonic()
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await publisher.send(json.dumps({"type": "pub", "topic": "bench", "body": repr(time.time())}))
        async with asyncio.timeout(60):
            await asyncio.gather(*consumers)
    for _, connection in connections:
        await connection.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--subscribers", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kafka_dir = str(Path(folder) / "kafka")
        bootstrap = subprocess.run(
            [sys.executable, str(ROOT / "scripts/kafka"), "start", "--port", "0", "--dir", kafka_dir],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ports = [free_port(), free_port()]
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "minimess", "serve", "--broker", "kafka", "--port", str(port),
                 "--kafka-bootstrap", bootstrap, "--kafka-partitions", "3", "--node-id", f"s{n}",
                 "--tick", "0", "--rate-limit", "0", "-q"],
                stderr=subprocess.DEVNULL,
            )
            for n, port in enumerate(ports, start=1)
        ]  # fmt: skip
        try:
            for port in ports:
                wait_ready(port)
            # A fresh Kafka answers slowly until its JIT has warmed up: a short unreported round first.
            asyncio.run(measure(ports, args.rate, 5, args.subscribers))
            rounds = [
                asyncio.run(measure(ports, args.rate, args.seconds, args.subscribers)) for _ in range(3)
            ]
        finally:
            for server in servers:
                server.terminate()
                server.wait()
            subprocess.run(
                [sys.executable, str(ROOT / "scripts/kafka"), "stop", "--dir", kafka_dir], check=False
            )
    # Baseline in the same run: the same clients on one server with the memory broker.
    port = free_port()
    memory = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minimess",
            "serve",
            "--port",
            str(port),
            "--tick",
            "0",
            "--rate-limit",
            "0",
            "-q",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        asyncio.run(measure([port], args.rate, 5, 2 * args.subscribers))
        baseline = [
            asyncio.run(measure([port], args.rate, args.seconds, 2 * args.subscribers)) for _ in range(3)
        ]
    finally:
        memory.terminate()
        memory.wait()
    print(f"{args.rate:g} msg/s for {args.seconds:g} s, {args.subscribers} subscribers per server, 3 rounds")
    report("memory broker, one server", [latencies[port] for latencies in baseline])
    for name, kafka_port in zip(("kafka, server 1 (publisher's)", "kafka, server 2"), ports, strict=True):
        report(name, [latencies[kafka_port] for latencies in rounds])


def report(name: str, rounds: list[list[float]]) -> None:
    p50s = [statistics.median(values) for values in rounds]
    p99s = [percentile(values, 0.99) for values in rounds]
    print(
        f"{name:<30} p50 {' / '.join(f'{v:.1f}' for v in p50s)} ms, "
        f"p99 {' / '.join(f'{v:.1f}' for v in p99s)} ms (median p99 {statistics.median(p99s):.1f})"
    )


if __name__ == "__main__":
    main()
