"""Fan-out cost of minimess against a bare websockets.broadcast server, measured in one run.

usage: uv run python benchmarks/fanout.py [--subscribers 1000] [--messages 200] [--rounds 3]

Both servers get the same load: subscribers on one topic in two worker processes, and one
publisher that floods (waits only for TCP) or publishes at a steady rate. Server CPU time is
read from /proc for the server process alone, so a busy load generator does not skew it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscriber_worker(
    port: int, count: int, messages: int, ready: Event, results: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    async def run() -> None:
        url = f"ws://127.0.0.1:{port}/subscribe/id:s{os.getpid()}/topic:t"
        connections = [
            await connect(url, max_queue=None, compression=None, ping_interval=None) for _ in range(count)
        ]
        for connection in connections:
            await connection.recv()
        ready.set()
        latencies: list[float] = []

        async def consume(connection: object) -> None:
            received = 0
            while received < messages:
                frame = json.loads(await connection.recv())  # type: ignore[attr-defined]
                if frame["type"] == "message":
                    received += 1
                    latencies.append(time.time() - float(frame["body"]))

        await asyncio.gather(*(consume(c) for c in connections))
        results.put(latencies)

    asyncio.run(run())


async def publish(port: int, pid: int, messages: int, rate: float) -> tuple[float, float]:
    async with connect(f"ws://127.0.0.1:{port}/subscribe/id:publisher", compression=None) as connection:
        await connection.recv()
        cpu_start, wall_start = cpu_seconds(pid), time.time()
        acks = 0

        async def read_acks() -> None:
            nonlocal acks
            while acks < messages:
                if json.loads(await connection.recv())["type"] == "ack":
                    acks += 1

        reader = asyncio.create_task(read_acks())
        for i in range(messages):
            await connection.send(
                json.dumps({"type": "pub", "topic": "t", "body": repr(time.time()), "ref": str(i)})
            )
            if rate:
                await asyncio.sleep(1 / rate)
        await reader
        return cpu_start, wall_start


def measure(port: int, pid: int, subscribers: int, messages: int, rate: float) -> dict[str, float]:
    ready = [multiprocessing.Event() for _ in range(WORKERS)]
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [
        multiprocessing.Process(
            target=subscriber_worker, args=(port, subscribers // WORKERS, messages, ready[i], results)
        )
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for event in ready:
        event.wait()
    cpu_start, wall_start = asyncio.run(publish(port, pid, messages, rate))
    latencies = sorted(latency for _ in workers for latency in results.get())
    cpu, wall = cpu_seconds(pid) - cpu_start, time.time() - wall_start
    for worker in workers:
        worker.join()
    deliveries = len(latencies)
    return {
        "cpu_us_per_delivery": cpu / deliveries * 1e6,
        "deliveries_per_s": deliveries / wall,
        "p50_ms": latencies[deliveries // 2] * 1000,
        "p99_ms": latencies[int(deliveries * 0.99)] * 1000,
    }


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{command} did not listen on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    baseline_port, minimess_port = free_port(), free_port()
    servers = {
        "baseline": start(
            [sys.executable, str(ROOT / "benchmarks/baseline_server.py"), str(baseline_port)], baseline_port
        ),
        "minimess": start(
            [
                sys.executable,
                "-m",
                "minimess",
                "serve",
                "--port",
                str(minimess_port),
                "--tick",
                "0",
                "--rate-limit",
                "0",
                "--queue-size",
                "100000",
                "-q",
            ],
            minimess_port,
        ),
    }
    ports = {"baseline": baseline_port, "minimess": minimess_port}
    try:
        for scenario, rate in (("flood", 0.0), ("20 msg/s", 20.0)):
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "minimess": []}
            for _ in range(args.rounds):
                for name in ("baseline", "minimess"):  # alternate, so drift hits both alike
                    runs[name].append(
                        measure(ports[name], servers[name].pid, args.subscribers, args.messages, rate)
                    )
            print(
                f"\n{scenario}, {args.subscribers} subscribers, {args.messages} messages,",
                f"median of {args.rounds} rounds",
            )
            print(f"{'metric':<22}{'baseline':>12}{'minimess':>12}{'ratio':>8}")
            for metric in runs["baseline"][0]:
                base = statistics.median(r[metric] for r in runs["baseline"])
                ours = statistics.median(r[metric] for r in runs["minimess"])
                print(f"{metric:<22}{base:>12.2f}{ours:>12.2f}{ours / base:>8.2f}")
    finally:
        for process in servers.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
