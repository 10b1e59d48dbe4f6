"""The proxy tier's cost per connection: HAProxy's memory and descriptors for idle WebSocket tunnels.

usage: uv run python -m benchmarks.proxy_memory [--connections 3000] [--rounds 3]

Each round starts one `minimess serve` behind HAProxy (deploy/haproxy-local.cfg.in, as
scripts/cluster runs it), reads HAProxy's RSS, opens `--connections` WebSocket connections through
it (each subscribed to a topic of its own, then idle), and reads HAProxy's RSS and open
descriptors again. Reported: the median over the rounds of the RSS per connection, and the
descriptors per connection (one toward the client, one toward the server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess

# Connections opened at once: enough to be quick, few enough for the server's handshake pool.
AT_ONCE = 100


def rss_kib(pid: int) -> int:
    """The resident set of process `pid`, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def open_connections(proxy: ProxyProcess, count: int) -> list[ClientConnection]:
    connections: list[ClientConnection] = []
    for start in range(0, count, AT_ONCE):
        batch = range(start, min(start + AT_ONCE, count))
        connections += await asyncio.gather(
            *(connect(proxy.url(f"/subscribe/id:u{n}/topic:t{n}"), ping_interval=None) for n in batch)
        )
    return connections


async def one_round(directory: Path, count: int) -> tuple[float, float]:
    """HAProxy's RSS (KiB) and descriptors per connection, `count` idle connections through it."""
    server = ServerProcess("--max-connections", str(count + 100), "--max-handshakes-per-ip", "0").start()
    proxy = ProxyProcess("haproxy", directory, [server.port]).start()
    try:
        assert proxy.process is not None
        pid = proxy.process.pid
        before, fds_before = rss_kib(pid), descriptors(pid)
        connections = await open_connections(proxy, count)
        # Every tunnel is open end to end once its `subscribed` frame came back through it.
        await asyncio.gather(*(connection.recv() for connection in connections))
        after, fds_after = rss_kib(pid), descriptors(pid)
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.close()
        return (after - before) / count, (fds_after - fds_before) / count
    finally:
        proxy.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(1, args.rounds + 1):
            result = asyncio.run(one_round(Path(folder) / f"round{number}", args.connections))
            print(f"round {number}: {result[0]:.2f} KiB, {result[1]:.2f} descriptors per connection")
            results.append(result)
    print(
        f"HAProxy, {args.connections} idle WebSocket connections, median of {args.rounds} rounds: "
        f"{statistics.median(r[0] for r in results):.2f} KiB of RSS and "
        f"{statistics.median(r[1] for r in results):.2f} descriptors per connection"
    )


if __name__ == "__main__":
    main()
