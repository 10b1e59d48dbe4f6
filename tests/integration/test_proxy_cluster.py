"""Two `minimess serve --broker kafka` servers behind real HAProxy and nginx, as 100 clients see them."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from websockets.asyncio.client import connect

from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.link import ServerLink
from minimess.domain.model import Message, Topic, Uid
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import (
    ProxyProcess,
)
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import logged, next_frame, subscribe_path
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

CLIENTS = 100
TOPIC = Topic("room")
# Every link's reconnect delays: full jitter under 0.2 s, 0.4 s, 0.8 s, then 1 s.
BACKOFF_FIRST = 0.2
BACKOFF_CAP = 1.0
# From losing a server until every displaced client is back on the other one. Both proxies pass a
# refused connection on to the other server at once, so each client's first attempt, after a
# delay under 0.2 s, gets through; the bound also allows for two failed attempts (0.4 s and 0.8 s
# more) and the handshakes of 50 clients on a busy 2-core machine.
RECONNECT_WITHIN = 3.0
# Until a restarted server takes new connections through the proxy: HAProxy's two health checks
# 1 s apart (rise 2), or nginx's fail_timeout of 2 s since its last failed attempt.
RETURN_WITHIN = 8.0
# Until one message has reached all the clients through Kafka, and until 100 links are connected.
DELIVER_WITHIN = 15.0
CONNECT_WITHIN = 15.0
# Until a server answers /readyz 200: it creates the Kafka topic and connects its clients first.
READY_WITHIN = 20.0
# Until a server that got SIGTERM has drained its clients and exited.
EXIT_WITHIN = 15.0
GOING_AWAY = "the server is going away"
# An address from TEST-NET-3 (RFC 5737): what a client lying about where it comes from would send.
FORGED = "203.0.113.9"


@attrs.define
class Cluster:
    """Servers s1 and s2 on one Kafka topic, and the proxy in front of both."""

    s1: ServerProcess
    s2: ServerProcess
    proxy: ProxyProcess

    @property
    def servers(self) -> tuple[ServerProcess, ServerProcess]:
        return (self.s1, self.s2)


@attrs.frozen
class Connect:
    at: float
    node: str
    topics: tuple[Topic, ...]


@attrs.frozen
class Disconnect:
    at: float
    reason: str


class RecordingClient:
    """One ServerLink through the proxy, and the LinkEvents fake that records what it reports."""

    def __init__(self, url: str, uid: str, notify: Callable[[], None]) -> None:
        self.uid = uid
        self.link = ServerLink(
            url,
            Uid(uid),
            (TOPIC,),
            Backoff(BACKOFF_FIRST, BACKOFF_CAP),
            ack_timeout=scaled(10),
            queue_size=16,
            open_timeout=scaled(10),
        )
        self._notify = notify
        # The server it is connected to now; None while disconnected.
        self.node: str | None = None
        self.connects: list[Connect] = []
        self.disconnects: list[Disconnect] = []
        self.bodies: list[str] = []
        # publish_failed and refused reports: none is expected.
        self.failures: list[str] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.link.run(self))
        self.task.add_done_callback(lambda _task: self._notify())

    def connects_since(self, moment: float) -> list[Connect]:
        return [connect for connect in self.connects if connect.at >= moment]

    def disconnects_since(self, moment: float) -> list[Disconnect]:
        return [disconnect for disconnect in self.disconnects if disconnect.at >= moment]

    def connected(self, node: str, topics: tuple[Topic, ...]) -> None:
        self.node = node
        self.connects.append(Connect(time.monotonic(), node, topics))
        self._notify()

    def disconnected(self, reason: str, retry_in: float) -> None:
        self.node = None
        self.disconnects.append(Disconnect(time.monotonic(), reason))
        self._notify()

    def received(self, message: Message) -> None:
        self.bodies.append(message.body)
        self._notify()

    def subscribed(self, topic: Topic) -> None:
        self._notify()

    def unsubscribed(self, topic: Topic) -> None:
        self._notify()

    def refused(self, what: str, reason: str) -> None:
        self.failures.append(f"refused: {what}: {reason}")
        self._notify()

    def missed(self, topic: Topic) -> None:
        # On Kafka every server can recover what a client missed: a gap is a failure.
        self.failures.append(f"messages of {topic} may be missing")
        self._notify()

    def publish_failed(self, topic: Topic, body: str, reason: str) -> None:
        self.failures.append(f"publish of {body!r} failed: {reason}")
        self._notify()

    def published(self, topic: Topic, body: str) -> None:
        pass

    def ticked(self, timestamp: str) -> None:
        pass


class Fleet:
    """Many RecordingClients through one proxy, in one event loop, and waits on what they report."""

    def __init__(self) -> None:
        self.clients: list[RecordingClient] = []
        self._numbers = itertools.count(1)
        # Set and replaced whenever any client reports anything.
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def connect(self, url: str, count: int) -> list[RecordingClient]:
        """Start `count` links at once, each with a uid of its own; wait until all are connected."""
        added = [RecordingClient(url, f"c{next(self._numbers)}", self._notify) for _ in range(count)]
        self.clients += added
        for client in added:
            client.start()
        await self.until(
            lambda: all(client.node is not None for client in added),
            CONNECT_WITHIN,
            lambda: (
                f"{sum(client.node is None for client in added)} of {count} links not connected; "
                f"last reasons: {[c.disconnects[-1].reason for c in added if c.disconnects][-5:]}"
            ),
        )
        return added

    async def until(self, predicate: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
        """Wait until `predicate` holds; fail after `within` seconds (scaled) with `what()`."""
        try:
            async with asyncio.timeout(scaled(within)):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"not within {scaled(within)} s: {what()}")

    def on(self, node: str) -> list[RecordingClient]:
        return [client for client in self.clients if client.node == node]

    def nodes(self) -> Counter[str | None]:
        return Counter(client.node for client in self.clients)

    async def publish_to_all(self, sender: RecordingClient, body: str) -> None:
        """`sender` publishes `body` on TOPIC; wait until every client received it."""
        assert sender.link.publish(TOPIC, body)
        await self.until(
            lambda: all(body in client.bodies for client in self.clients),
            DELIVER_WITHIN,
            lambda: (
                f"{body!r} reached {sum(body in c.bodies for c in self.clients)} of "
                f"{len(self.clients)} clients; nodes {self.nodes()}; failures {self.failures()}"
            ),
        )

    def failures(self) -> list[str]:
        return [f"{client.uid}: {failure}" for client in self.clients for failure in client.failures]

    async def close(self) -> None:
        for client in self.clients:
            client.link.close()
        tasks = [client.task for client in self.clients if client.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=scaled(10))
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def cluster(
    proxy_kind: str, kafka: KafkaProcess, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> Iterator[Cluster]:
    """Servers s1 and s2 (ready, on a fresh Kafka topic) behind a fresh proxy of `proxy_kind`."""
    topic = fresh_kafka_topic()
    s1, s2 = (
        start_server(*kafka_serve_args(kafka, topic, node), "--trusted-proxy", "127.0.0.1", "-v")
        for node in ("s1", "s2")
    )
    for server in (s1, s2):
        wait_status(server, "/readyz", 200, READY_WITHIN)
    proxy = ProxyProcess(proxy_kind, tmp_path / proxy_kind, [s1.port, s2.port]).start()
    try:
        yield Cluster(s1, s2, proxy)
    finally:
        proxy.stop()


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    """Clients to start through the proxy; every link is closed after the test."""
    clients = Fleet()
    try:
        yield clients
    finally:
        await clients.close()


async def spread(cluster: Cluster, fleet: Fleet) -> list[RecordingClient]:
    """CLIENTS links through the proxy, all connected; they must be on both servers."""
    clients = await fleet.connect(cluster.proxy.url(), CLIENTS)
    nodes = fleet.nodes()
    # Least connections, and the links connect at once: close to half on each.
    assert set(nodes) == {"s1", "s2"}, f"not spread over both servers: {nodes}"
    assert min(nodes.values()) >= CLIENTS * 2 // 5, f"not balanced: {nodes}"
    return clients


async def until_moved(
    fleet: Fleet, displaced: list[RecordingClient], since: float, to: str, within: float
) -> None:
    """Wait until every displaced client is connected to `to` again, on its first attempt, resubscribed."""
    await fleet.until(
        lambda: all(client.node == to and client.connects_since(since) for client in displaced),
        within,
        lambda: (
            f"{sum(not (c.node == to and c.connects_since(since)) for c in displaced)} of "
            f"{len(displaced)} displaced clients not back on {to}; nodes {fleet.nodes()}; reasons "
            f"{Counter(d.reason for c in displaced for d in c.disconnects_since(since))}"
        ),
    )


async def success_node(cluster: Cluster, uid: str, **options: Any) -> str:
    """Connect through the proxy as `uid`; the node of the `success` greeting."""
    async with connect(cluster.proxy.url(subscribe_path(uid)), open_timeout=scaled(10), **options) as ws:
        greeting = await next_frame(ws)
    assert greeting["type"] == "success", greeting
    return str(greeting["node"])


async def test_clients_spread_over_both_servers_and_a_message_from_either_reaches_all_100(
    cluster: Cluster, fleet: Fleet
) -> None:
    """The server logs each link's connection once, with the proxy's address as both client and peer."""
    clients = await spread(cluster, fleet)
    for node in ("s1", "s2"):
        await fleet.publish_to_all(fleet.on(node)[0], f"from a client of {node}")
    assert all(client.connects[0].topics == (TOPIC,) for client in clients)
    assert fleet.failures() == []
    connected = await logged(cluster.servers, "client_connected", count=CLIENTS)
    assert sorted(event["uid"] for event in connected) == sorted(client.uid for client in clients)
    assert {(event["client"], event["peer"]) for event in connected} == {("127.0.0.1", "127.0.0.1")}


async def test_servers_log_the_nearest_untrusted_hop_of_x_forwarded_for(cluster: Cluster) -> None:
    """The server logs the nearest hop of X-Forwarded-For that is not a --trusted-proxy, forged or not."""
    forged = {"additional_headers": {"X-Forwarded-For": FORGED}}
    remote = {"local_addr": ("127.0.0.2", 0)}
    cases: dict[str, tuple[dict[str, Any], str]] = {
        # From 127.0.0.1, itself a trusted proxy address: the proxy appends it, so the hop before counts.
        "forger-local": (forged, FORGED),
        # From 127.0.0.2, untrusted: the proxy appends it, and nothing further left is believed.
        "forger-remote": ({**forged, **remote}, "127.0.0.2"),
        "plain-remote": (remote, "127.0.0.2"),
    }
    for uid, (options, client) in cases.items():
        await success_node(cluster, uid, **options)
        # Exactly one server logged the connection, maybe only after the greeting arrived.
        (event,) = await logged(cluster.servers, "client_connected", uid=uid)
        assert (event["client"], event["peer"]) == (client, "127.0.0.1"), event


async def test_sigkill_moves_the_clients_of_the_dead_server_to_the_other_until_it_is_back(
    cluster: Cluster, fleet: Fleet
) -> None:
    """SIGKILL s1: its clients resubscribe on s2 within the backoff bound, a message reaches all, new
    ones go to s2; once s1 runs again on its port, new connections go to it again."""
    await spread(cluster, fleet)
    displaced, stayed = fleet.on("s1"), fleet.on("s2")
    killed_at = time.monotonic()
    cluster.s1.signal(signal.SIGKILL)
    assert await asyncio.to_thread(cluster.s1.wait, scaled(5)) == -signal.SIGKILL
    await until_moved(fleet, displaced, killed_at, "s2", RECONNECT_WITHIN)
    assert [client.uid for client in stayed if client.disconnects] == []
    await fleet.publish_to_all(displaced[0], "after the SIGKILL")
    newcomers = await fleet.connect(cluster.proxy.url(), 10)
    assert Counter(client.node for client in newcomers) == {"s2": 10}

    await asyncio.to_thread(cluster.s1.start, cluster.s1.port)
    await asyncio.to_thread(wait_status, cluster.s1, "/readyz", 200, READY_WITHIN)
    deadline = time.monotonic() + scaled(RETURN_WITHIN)
    probes: Counter[str] = Counter()
    for number in itertools.count():
        node = await success_node(cluster, f"probe-{number}")
        probes[node] += 1
        if node == "s1":
            break
        assert time.monotonic() < deadline, (
            f"no new connection on the restarted s1 within {scaled(RETURN_WITHIN)} s: {probes}"
        )
        await asyncio.sleep(0.1)  # a poll interval: only a probe shows when the proxy sends to s1 again
    # Least connections: s1 has none of the links, s2 all of them, so every new one goes to s1.
    newcomers = await fleet.connect(cluster.proxy.url(), 10)
    assert Counter(client.node for client in newcomers) == {"s1": 10}
    await fleet.publish_to_all(newcomers[0], "after the restart")
    assert fleet.failures() == []


async def test_sigterm_drains_the_clients_of_a_server_to_the_other_with_1001(
    cluster: Cluster, fleet: Fleet
) -> None:
    """SIGTERM s2: its clients are told 1001 and move to s1; no client stays disconnected."""
    await spread(cluster, fleet)
    displaced = fleet.on("s2")
    stopped_at = time.monotonic()
    cluster.s2.signal(signal.SIGTERM)
    await until_moved(fleet, displaced, stopped_at, "s1", RECONNECT_WITHIN)
    assert fleet.nodes() == {"s1": CLIENTS}
    for client in displaced:
        assert client.disconnects_since(stopped_at)[0].reason == GOING_AWAY, client.disconnects
    assert await asyncio.to_thread(cluster.s2.wait, scaled(EXIT_WITHIN)) == 0
    await fleet.publish_to_all(fleet.clients[0], "after the SIGTERM")
    assert fleet.failures() == []
