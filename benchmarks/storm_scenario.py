"""The storm: Kafka servers behind HAProxy, a thousand subscribers through it, one server killed, and
every subscriber it held back through the proxy and recovered from its last position.

Shared by tests/integration/test_storm.py, which asserts what every subscriber got, and
benchmarks/storm.py, which reports how fast they came back. Each subscriber is a plain `websockets`
client that keeps its position (epoch, offset) from the frames it got and, when its connection is
lost, reconnects through the proxy after a full-jitter backoff with that position in the URL
(docs/protocol.md, Recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess, wait_status
from tests.timeouts import scaled

NODES = ("s1", "s2", "s3")
# The server that is killed; the publisher is on another, directly, so that it is not displaced.
KILLED = "s1"
PUBLISHER_NODE = "s2"
# Each server's cap: 1,000 clients fit on the two that are left (500 each with least connections),
# so a cap that refuses a displaced client is a failure, not a retry.
MAX_CONNECTIONS = 600
# Reconnect delays, full jitter: under 1 s, 2 s, then 4 s. The first spreads the third of the
# clients that a kill displaces over a second instead of sending them to the proxy as one herd.
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 4.0
# First connections opened at once, at most: a bound on the handshakes queued at the start.
CONNECTING_AT_ONCE = 100
# Bounds on the waits (scaled): a server ready, all clients in, all recovered, all messages in.
READY_WITHIN = 30.0
CONNECT_WITHIN = 60.0
RECOVER_WITHIN = 30.0
DELIVER_WITHIN = 30.0
OPEN_TIMEOUT = 15.0


class StormFailure(Exception):
    """A wait of the storm that did not end within its bound, with what was missing."""


@attrs.define
class Subscriber:
    """One client through the proxy on one topic: its position, every offset it got, and its history."""

    uid: str
    topic: str
    changed: Callable[[], None]
    # The position: the topic's epoch and the offset of the last message got (or the subscription's start).
    epoch: str | None = None
    offset: int | None = None
    # The server it is subscribed on now; None while it is not.
    node: str | None = None
    offsets: list[int] = attrs.Factory(list)
    # (when, node) of each subscription, and (when, recovered) of each one made with a position.
    subscriptions: list[tuple[float, str]] = attrs.Factory(list)
    recoveries: list[tuple[float, bool]] = attrs.Factory(list)
    # (when, why) of each lost or failed connection, and the HTTP status of each refused upgrade.
    losses: list[tuple[float, str]] = attrs.Factory(list)
    refusals: list[int] = attrs.Factory(list)
    # Called once the first subscription is made (or the first attempt has failed).
    _first_done: Callable[[], None] | None = None

    async def run(self, url: str, first_connect: asyncio.Semaphore) -> None:
        """Stay subscribed through the proxy at `url` until cancelled, reconnecting with the position.

        The first connection waits for a place in `first_connect`, and gives it back once subscribed.
        """
        await first_connect.acquire()
        self._first_done = first_connect.release
        failed_attempts = await self._connect_once(url, 0)
        while True:
            # Full jitter: a delay drawn from [0, bound), the bound doubling per failed attempt.
            bound = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** max(0, failed_attempts - 1))
            await asyncio.sleep(random.uniform(0, bound))
            failed_attempts = await self._connect_once(url, failed_attempts)

    async def _connect_once(self, url: str, failed_attempts: int) -> int:
        """One connection, kept until it is lost; the failed attempts in a row after it."""
        position = "" if self.epoch is None else f"/topic:{self.topic}@{self.epoch}:{self.offset}"
        try:
            async with connect(
                f"{url}/subscribe/id:{self.uid}{position}", open_timeout=scaled(OPEN_TIMEOUT)
            ) as connection:
                node = str(json.loads(await connection.recv())["node"])
                if not position:
                    await connection.send(json.dumps({"type": "sub", "topic": self.topic}))
                await self._follow(connection, node, bool(position))
                reason = f"closed {connection.close_code}"
        except InvalidStatus as error:
            self.refusals.append(error.response.status_code)
            reason = f"refused {error.response.status_code}"
        except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as error:
            reason = type(error).__name__
        self._first_subscribed()
        subscribed = self.node is not None
        self.node = None
        self.losses.append((time.monotonic(), reason))
        self.changed()
        return 0 if subscribed else failed_attempts + 1

    async def _follow(self, connection: ClientConnection, node: str, recovering: bool) -> None:
        async for data in connection:
            frame = json.loads(data)
            kind = frame.get("type")
            if kind == "subscribed" and frame.get("topic") == self.topic:
                if recovering:
                    self.recoveries.append((time.monotonic(), bool(frame.get("recovered"))))
                else:
                    self.epoch, self.offset = str(frame["epoch"]), int(frame["offset"])
                self.node = node
                self.subscriptions.append((time.monotonic(), node))
                self._first_subscribed()
                self.changed()
            elif kind == "message" and frame.get("topic") == self.topic:
                self.epoch, self.offset = str(frame["epoch"]), int(frame["offset"])
                self.offsets.append(self.offset)
                self.changed()

    def _first_subscribed(self) -> None:
        if self._first_done is not None:
            self._first_done()
            self._first_done = None

    def recovered_since(self, moment: float) -> float | None:
        """When it was last subscribed again with `recovered: true` after `moment`, if it is subscribed."""
        if self.node is None or not self.recoveries:
            return None
        at, recovered = self.recoveries[-1]
        return at if recovered and at >= moment else None


@attrs.define
class Publisher:
    """Publishes round-robin over the topics, one message in flight, and keeps every ack's offset."""

    topics: tuple[str, ...]
    changed: Callable[[], None]
    # Offsets acked, per topic, in the order acked.
    acked: dict[str, list[int]] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)

    @property
    def count(self) -> int:
        return sum(len(offsets) for offsets in self.acked.values())

    async def run(self, url: str, interval: float) -> None:
        """Publish every `interval` seconds (a pace, not a wait for anything) until cancelled."""
        async with connect(
            f"{url}/subscribe/id:storm-publisher", open_timeout=scaled(OPEN_TIMEOUT)
        ) as connection:
            await connection.recv()  # `success`
            number = 0
            while True:
                topic = self.topics[number % len(self.topics)]
                frame = {"type": "pub", "topic": topic, "body": f"storm {number}", "ref": str(number)}
                await connection.send(json.dumps(frame))
                while True:
                    answer = json.loads(await connection.recv())
                    if answer.get("ref") == str(number):
                        break
                if answer["type"] == "ack":
                    self.acked.setdefault(topic, []).append(int(answer["offset"]))
                else:
                    self.errors.append(str(answer.get("code")))
                self.changed()
                number += 1
                await asyncio.sleep(interval)


@attrs.frozen
class StormResult:
    """What a storm did: who was displaced, when each was back, and what each subscriber got."""

    subscribers: list[Subscriber]
    displaced: list[Subscriber]
    killed_at: float
    # When each displaced subscriber was subscribed again with `recovered: true`, in its order.
    recovered_at: list[float]
    acked: dict[str, list[int]]
    publish_errors: list[str]
    # Each server's connections_refused events (503 over --max-connections, 429 per address).
    server_refusals: dict[str, int]

    @property
    def full_recovery_s(self) -> float:
        """From the SIGKILL until the last displaced subscriber was recovered."""
        return max(self.recovered_at) - self.killed_at

    @property
    def reconnects_per_s(self) -> float:
        """Displaced subscribers recovered per second, over the time to full recovery."""
        return len(self.displaced) / self.full_recovery_s

    @property
    def peak_reconnects_per_s(self) -> int:
        """The most displaced subscribers recovered within any one second."""
        times = sorted(self.recovered_at)
        return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)

    @property
    def failed_attempts(self) -> Counter[str]:
        """Why the displaced subscribers' connections after the kill ended or failed (the kill's own loss
        left out), by reason; the ones still open at the end are not counted."""
        reasons: Counter[str] = Counter()
        for subscriber in self.displaced:
            after = [reason for at, reason in subscriber.losses if at >= self.killed_at]
            reasons.update(after[1:])
        return reasons

    def problems(self) -> list[str]:
        """Every way a subscriber's messages differ from the acked ones of its topic: a gap, a repeat, a
        message out of order; empty when each has each message of its topic exactly once, in order."""
        found = []
        for subscriber in self.subscribers:
            expected = self.acked.get(subscriber.topic, [])
            got = subscriber.offsets
            if got != expected:
                repeats = [offset for offset, n in Counter(got).items() if n > 1]
                missing = sorted(set(expected) - set(got))
                found.append(
                    f"{subscriber.uid} on {subscriber.topic}: {len(got)} of {len(expected)} messages,"
                    f" missing {missing[:5]}, repeated {repeats[:5]}, in order {got == sorted(got)}"
                )
        return found


class Storm:
    """Three `minimess serve --broker kafka` servers on one Kafka topic behind HAProxy, and the waits."""

    def __init__(self, kafka: KafkaProcess, folder: Path, clients: int, topics: int) -> None:
        self.kafka = kafka
        self.folder = folder
        self.topics = tuple(f"storm-{number}" for number in range(topics))
        self._changed = asyncio.Event()
        self.subscribers = [
            Subscriber(f"c{number}", self.topics[number % topics], self._notify) for number in range(clients)
        ]
        self.publisher = Publisher(self.topics, self._notify)
        self.servers: dict[str, ServerProcess] = {}
        self.proxy: ProxyProcess | None = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
        """Wait until `predicate` holds, woken by every report; StormFailure after `within` s (scaled)."""
        try:
            async with asyncio.timeout(scaled(within)):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise StormFailure(f"not within {scaled(within)} s: {what()}") from None

    @contextlib.contextmanager
    def cluster(self) -> Iterator[None]:
        """Start the servers (at once) and HAProxy in front of them; stop them all after."""
        topic = fresh_kafka_topic()
        self.servers = {
            node: ServerProcess(
                *kafka_serve_args(self.kafka, topic, node),
                *("--max-connections", str(MAX_CONNECTIONS), "--trusted-proxy", "127.0.0.1"),
            )
            for node in NODES
        }
        try:
            failures: list[BaseException] = []
            starting = [
                threading.Thread(target=self._start, args=(server, failures))
                for server in self.servers.values()
            ]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join()
            if failures:
                raise StormFailure(f"a server did not start: {failures[0]}")
            ports = [server.port for server in self.servers.values()]
            self.proxy = ProxyProcess("haproxy", self.folder / "haproxy", ports).start()
            yield
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            for server in self.servers.values():
                server.stop()

    @staticmethod
    def _start(server: ServerProcess, failures: list[BaseException]) -> None:
        try:
            server.start()
            wait_status(server, "/readyz", 200, READY_WITHIN)
        except Exception as error:  # reported by the thread that waits for the start
            failures.append(error)

    async def run(self, publish_interval: float, before_kill: int, after_recovery: int) -> StormResult:
        """Connect every subscriber, publish throughout, SIGKILL KILLED once `before_kill` messages are
        acked, wait until every displaced subscriber is recovered, publish `after_recovery` more, and
        wait until every subscriber has the last message of its topic."""
        assert self.proxy is not None, "run() inside cluster()"
        raise_file_limit(len(self.subscribers) * 2 + 256)
        first_connect = asyncio.Semaphore(CONNECTING_AT_ONCE)
        tasks = [asyncio.create_task(s.run(self.proxy.url(), first_connect)) for s in self.subscribers]
        publishing: asyncio.Task[None] | None = None
        try:
            await self.until(
                lambda: all(s.node is not None for s in self.subscribers),
                CONNECT_WITHIN,
                lambda: f"{sum(s.node is None for s in self.subscribers)} not subscribed; {self.spread()}",
            )
            publishing = asyncio.create_task(
                self.publisher.run(self.servers[PUBLISHER_NODE].url(""), publish_interval)
            )
            await self.until(
                lambda: self.publisher.count >= before_kill, DELIVER_WITHIN, lambda: "publishing stalled"
            )
            displaced = [s for s in self.subscribers if s.node == KILLED]
            killed = self.servers[KILLED]
            killed_at = time.monotonic()
            killed.signal(signal.SIGKILL)
            await asyncio.to_thread(killed.wait, scaled(10))
            await self.until(
                lambda: all(s.recovered_since(killed_at) for s in displaced),
                RECOVER_WITHIN,
                lambda: (
                    f"{sum(not s.recovered_since(killed_at) for s in displaced)} of {len(displaced)}"
                    f" displaced not recovered; {self.spread()}; losses"
                    f" {Counter(r for s in displaced for _, r in s.losses)}"
                ),
            )
            recovered_at = [s.recovered_since(killed_at) or 0.0 for s in displaced]
            total = self.publisher.count + after_recovery
            await self.until(
                lambda: self.publisher.count >= total, DELIVER_WITHIN, lambda: "publishing stalled"
            )
            publishing.cancel()
            last = {topic: offsets[-1] for topic, offsets in self.publisher.acked.items()}
            await self.until(
                lambda: all(s.offsets and s.offsets[-1] >= last[s.topic] for s in self.subscribers),
                DELIVER_WITHIN,
                lambda: (
                    f"{sum(not s.offsets or s.offsets[-1] < last[s.topic] for s in self.subscribers)}"
                    " subscribers without the last message of their topic"
                ),
            )
        finally:
            for task in [*tasks, *([publishing] if publishing else [])]:
                task.cancel()
            await asyncio.gather(*tasks, *([publishing] if publishing else []), return_exceptions=True)
        return StormResult(
            subscribers=self.subscribers,
            displaced=displaced,
            killed_at=killed_at,
            recovered_at=recovered_at,
            acked={topic: list(offsets) for topic, offsets in self.publisher.acked.items()},
            publish_errors=list(self.publisher.errors),
            server_refusals={
                node: len(server.logged_so_far("connections_refused"))
                for node, server in self.servers.items()
            },
        )

    def spread(self) -> str:
        return f"subscribed on {dict(Counter(s.node for s in self.subscribers))}"


def raise_file_limit(needed: int) -> None:
    """Raise this process's soft limit on open files to `needed` (within the hard limit): each client
    is a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
