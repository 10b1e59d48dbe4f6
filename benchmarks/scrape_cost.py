"""What requests for /metrics cost a server holding many idle connections, its rendering cached or not.

usage: uv run python -m benchmarks.scrape_cost [--connections 10000] [--seconds 5] [--path /metrics]

For each --metrics-max-age in --max-ages (by default 0, a rendering per request, and 1, the
default), a fresh `minimess serve` (pings off, so that idle connections cost nothing) gets that many
idle WebSocket connections from this process, then GETs of the path one after the other for that
many seconds, each on a new TCP connection as Prometheus's scrapes and a curl loop make them. It
prints the server's CPU time (from /proc, before and after) per request and per second, and the
answer times: while a rendering runs, the server's event loop serves nobody else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat: user and system time in clock ticks.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(url: str) -> float:
    """Seconds until the whole answer to GET `url` was read."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def _serve(port: int, max_age: float) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "minimess", "serve", "--port", str(port), "--tick", "0"),
        *("--ping-interval", "0", "--log-level", "warning", "--metrics-max-age", str(max_age)),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _get(f"http://{HOST}:{port}/healthz")
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server on port {port} did not start")


async def _open_idle(port: int, count: int) -> list[ClientConnection]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(number: int) -> ClientConnection:
        async with gate:
            # No pings from this side either: the connections stay idle.
            return await connect(f"ws://{HOST}:{port}/subscribe/id:idle-{number}", ping_interval=None)

    return list(await asyncio.gather(*(one(number) for number in range(count))))


async def _measure(max_age: float, connections: int, duration: float, path: str) -> str:
    port = _free_port()
    server = _serve(port, max_age)
    try:
        clients = await _open_idle(port, connections)
        url = f"http://{HOST}:{port}{path}"
        for _ in range(3):
            await asyncio.to_thread(_get, url)
        cpu_before = _cpu_seconds(server.pid)
        started = time.perf_counter()
        seconds: list[float] = []
        while time.perf_counter() - started < duration:
            seconds.append(await asyncio.to_thread(_get, url))
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(server.pid) - cpu_before
        for client in clients:
            client.transport.abort()
    finally:
        server.terminate()
        server.wait(30)
    requests = len(seconds)
    return (
        f"--metrics-max-age {max_age:g}: {connections:,} idle connections, {requests:,} x GET {path} in"
        f" {elapsed:.1f} s: server CPU {cpu / requests * 1000:.2f} ms per request,"
        f" {cpu / elapsed * 1000:.0f} ms per second; answer p50 {statistics.median(seconds) * 1000:.2f} ms,"
        f" p99 {statistics.quantiles(seconds, n=100)[98] * 1000:.2f} ms, slowest {max(seconds) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--max-ages", type=float, nargs="+", default=[0.0, 1.0])
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for max_age in args.max_ages:
        print(asyncio.run(_measure(max_age, args.connections, args.seconds, args.path)), flush=True)


if __name__ == "__main__":
    main()
