"""Failover behind HAProxy and nginx: how fast, and how spread out, clients come back after a SIGKILL.

usage: uv run python -m benchmarks.failover [--clients 100] [--rounds 3] [--proxy haproxy --proxy nginx]

For each proxy and round: a fresh Kafka topic, two `minimess serve --broker kafka` servers (s1, s2)
behind the proxy, and `--clients` in-process ServerLinks (Backoff(first=0.2, cap=1.0), full
jitter) connected through it. Then s1 gets SIGKILL, and every client that was on it is followed
until it is connected again. Reported, over all rounds, for the displaced clients: the time until
the last is back; when each saw the loss, when it was back, and the first retry delay it drew
(min, p50, p90, max); the attempts that failed; and the most reconnects in any 50 ms: with full
jitter they spread over the first delay's 0.2 s instead of arriving as one herd. `--no-jitter`
adds rows where every client waits the whole bound, which is what a herd looks like.

Starts its own Kafka through scripts/kafka in a temporary folder; needs haproxy and nginx
(Debian installs them in /usr/sbin).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs

from devtools import processes
from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.link import ServerLink
from minimess.domain.model import Message, Topic, Uid
from tests.integration.kafka_process import KafkaProcess
from tests.integration.proxy_process import PROXIES, ProxyProcess
from tests.integration.server_process import ServerProcess

TOPIC = Topic("room")
FIRST, CAP = 0.2, 1.0
# The window in which reconnects are counted to find the peak: a herd lands in one.
WINDOW = 0.05
# Bound on every wait (a server's readiness, all clients connected, all back).
WITHIN = 30.0


@attrs.define
class Recorder:
    """LinkEvents of one link: when it connected (and where), when it lost the connection."""

    changed: Callable[[], None]
    node: str | None = None
    connects: list[tuple[float, str]] = attrs.Factory(list)
    disconnects: list[tuple[float, str, float]] = attrs.Factory(list)

    def connected(self, node: str, topics: tuple[Topic, ...]) -> None:
        self.node = node
        self.connects.append((time.monotonic(), node))
        self.changed()

    def disconnected(self, reason: str, retry_in: float) -> None:
        self.node = None
        self.disconnects.append((time.monotonic(), reason, retry_in))
        self.changed()

    def received(self, message: Message) -> None:
        pass

    def subscribed(self, topic: Topic) -> None:
        pass

    def unsubscribed(self, topic: Topic) -> None:
        pass

    def refused(self, what: str, reason: str) -> None:
        pass

    def missed(self, topic: Topic) -> None:
        pass

    def publish_failed(self, topic: Topic, body: str, reason: str) -> None:
        pass

    def ticked(self, timestamp: str) -> None:
        pass


@attrs.frozen
class Sample:
    """What one displaced client did after the SIGKILL: seconds until it was back, its first delay."""

    back: float
    # When it saw the connection lost.
    lost: float
    first_retry: float
    # Attempts after the first that failed (the proxy refused, or no server answered).
    refused: int


@attrs.define
class Row:
    """One proxy (and jitter setting), over all its rounds."""

    name: str
    samples: list[Sample] = attrs.Factory(list)
    # Per round: seconds from the SIGKILL until the last displaced client was back.
    all_back: list[float] = attrs.Factory(list)
    # Per round: the most reconnects within one WINDOW.
    peaks: list[int] = attrs.Factory(list)


class Changes:
    """Wakes the waiter whenever any link reports something."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WITHIN):
                while not condition():
                    await self._event.wait()
        except TimeoutError:
            raise RuntimeError(f"not within {WITHIN} s: {what}") from None


def server_args(kafka: KafkaProcess, topic: str, node: str) -> list[str]:
    return [
        *("--broker", "kafka", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic", topic),
        *("--kafka-partitions", "3", "--rate-limit", "0", "--tick", "0", "--node-id", node),
    ]


async def one_round(
    kafka: KafkaProcess, proxy_kind: str, clients: int, jitter: bool, folder: Path
) -> list[Sample]:
    """Start the cluster, connect the clients, SIGKILL s1; a Sample per client that was on s1."""
    topic = f"minimess-failover-{uuid.uuid4().hex}"
    servers = [ServerProcess(*server_args(kafka, topic, node)) for node in ("s1", "s2")]
    proxy: ProxyProcess | None = None
    tasks: list[asyncio.Task[None]] = []
    links: list[ServerLink] = []
    try:
        for server in servers:
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(wait_ready, server)
        proxy = ProxyProcess(
            proxy_kind, folder / f"{proxy_kind}-{uuid.uuid4().hex[:8]}", [s.port for s in servers]
        )
        await asyncio.to_thread(proxy.start)
        changes = Changes()
        recorders = [Recorder(changes.notify) for _ in range(clients)]
        for number, recorder in enumerate(recorders):
            # Without jitter every client waits the whole bound: the herd this benchmark looks for.
            backoff = Backoff(FIRST, CAP) if jitter else Backoff(FIRST, CAP, uniform=lambda _low, high: high)
            link = ServerLink(
                proxy.url(), Uid(f"c{number}"), (TOPIC,), backoff, ack_timeout=10, queue_size=16
            )
            links.append(link)
            tasks.append(asyncio.create_task(link.run(recorder)))
        await changes.until(lambda: all(r.node for r in recorders), "all clients connected")
        displaced = [r for r in recorders if r.node == "s1"]
        killed_at = time.monotonic()
        servers[0].signal(signal.SIGKILL)
        await changes.until(
            lambda: all(r.node == "s2" and r.connects[-1][0] > killed_at for r in displaced),
            "every displaced client back on s2",
        )
        samples = []
        for r in displaced:
            losses = [(at, retry_in) for at, _, retry_in in r.disconnects if at >= killed_at]
            samples.append(
                Sample(
                    back=r.connects[-1][0] - killed_at,
                    lost=losses[0][0] - killed_at,
                    first_retry=losses[0][1],
                    refused=len(losses) - 1,
                )
            )
        return samples
    finally:
        for link in links:
            link.close()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()


def wait_ready(server: ServerProcess) -> None:
    """Poll GET /readyz until 200 (the server has created the Kafka topic and connected to it)."""
    if not processes.wait_until(lambda: processes.http_status(server.http_url("/readyz")) == 200, WITHIN):
        raise RuntimeError(f"server on port {server.port} not ready within {WITHIN} s")


def quantiles(values: list[float]) -> str:
    """min p50 p90 max, in milliseconds."""
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    return " ".join(f"{value * 1000:5.0f}" for value in (ordered[0], at(0.5), at(0.9), ordered[-1]))


def peak(times: list[float]) -> int:
    """The most of `times` within any WINDOW."""
    ordered = sorted(times)
    return max(sum(1 for other in ordered[i:] if other < start + WINDOW) for i, start in enumerate(ordered))


def report(rows: list[Row], clients: int, rounds: int) -> None:
    print(f"\n{clients} clients, {rounds} rounds per row; milliseconds since the SIGKILL of s1")
    print(
        f"{'proxy':<18} {'moved':>5} {'all back':>9} {'lost min p50 p90 max':>25}"
        f"  {'reconnect min p50 p90 max':>25}"
        f"  {'1st delay min p50 p90 max':>25} {'refused':>7} {'peak/50ms':>9}"
    )
    for row in rows:
        print(
            f"{row.name:<18} {len(row.samples):>5} {statistics.mean(row.all_back) * 1000:>9.0f}"
            f" {quantiles([s.lost for s in row.samples]):>25}"
            f"  {quantiles([s.back for s in row.samples]):>25}"
            f"  {quantiles([s.first_retry for s in row.samples]):>25}"
            f" {sum(s.refused for s in row.samples):>7} {statistics.mean(row.peaks):>9.1f}"
        )
    print(
        "\nmoved: clients that were on s1, all rounds. all back: until the last was connected again,"
        " mean of the rounds.\nlost: until each saw its connection lost. reconnect: until each was"
        " connected again.\n1st delay: the backoff delay drawn at the loss. refused: later attempts"
        f" that failed.\npeak/50ms: most reconnects within {WINDOW * 1000:.0f} ms, mean of the rounds."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--proxy", action="append", choices=PROXIES, help="repeatable; default: both")
    parser.add_argument("--no-jitter", action="store_true", help="also measure clients without jitter")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="minimess-failover-") as folder:
        kafka = KafkaProcess(Path(folder) / "kafka")
        try:
            await asyncio.to_thread(kafka.start)
            for proxy_kind in args.proxy or PROXIES:
                for jitter in (True, False) if args.no_jitter else (True,):
                    row = Row(proxy_kind if jitter else f"{proxy_kind} no jitter")
                    for _ in range(args.rounds):
                        samples = await one_round(kafka, proxy_kind, args.clients, jitter, Path(folder))
                        row.samples += samples
                        row.all_back.append(max(s.back for s in samples))
                        row.peaks.append(peak([s.back for s in samples]))
                    rows.append(row)
        finally:
            await asyncio.to_thread(kafka.stop)
    report(rows, args.clients, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
