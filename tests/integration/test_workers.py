"""`minimess serve --workers 2`: two workers on one port, as clients see them, on the memory bus and Kafka."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from devtools import processes
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess
from tests.integration.wire import close_code, logged, next_frame, publish, send_frame, subscribe_path, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

WORKERS = 2
# Connections opened until both workers hold some: the kernel spreads them (SO_REUSEPORT's hash of
# the client's port), so that many all landing on one worker would take 2**-63.
MAX_ATTEMPTS = 64
SHUTDOWN_TIMEOUT = 5.0
OPTIONS = (
    "--workers",
    str(WORKERS),
    "--tick",
    "0",
    "--rate-limit",
    "0",
    "--shutdown-timeout",
    str(SHUTDOWN_TIMEOUT),
)

StartServer = Callable[..., ServerProcess]


async def start_workers(start_server: StartServer, *args: str) -> ServerProcess:
    """A supervisor of two workers, once both listen."""
    server = start_server(*OPTIONS, *args)
    await logged(server, "server_listening", count=WORKERS, within=60)
    return server


async def open_on(server: ServerProcess, uid: str, *topics: str) -> tuple[ClientConnection, str]:
    """A client connected as `uid` on `topics`, and the node (worker) that serves it."""
    connection = await connect(server.url(subscribe_path(uid, *topics)), open_timeout=scaled(10))
    success = await next_frame(connection, "success")
    return connection, str(success["node"])


async def clients_on_both(
    server: ServerProcess, topic: str, per_worker: int = 1
) -> dict[str, list[ClientConnection]]:
    """Clients subscribed to `topic`, by node, until each of the two workers holds `per_worker`."""
    by_node: dict[str, list[ClientConnection]] = {}
    for attempt in range(MAX_ATTEMPTS):
        connection, node = await open_on(server, unique(f"c{attempt}"), topic)
        by_node.setdefault(node, []).append(connection)
        if len(by_node) == WORKERS and all(len(held) >= per_worker for held in by_node.values()):
            return by_node
    raise AssertionError(f"{MAX_ATTEMPTS} connections did not reach both workers: {list(by_node)}")


async def messages(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_frame(connection, "message") for _ in range(count)]


def position(frame: dict[str, Any]) -> tuple[str, int]:
    return frame["epoch"], frame["offset"]


async def ended(connection: ClientConnection) -> None:
    """Wait until the connection ends (its worker killed: no close frame), dropping what it reads."""
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed:
            return


def publisher_survives(connection: ClientConnection) -> bool:
    """Whether a connection is still open (it was not on the killed worker)."""
    return connection.close_code is None


async def close_all(clients: dict[str, list[ClientConnection]]) -> None:
    await asyncio.gather(*(client.close() for held in clients.values() for client in held))


async def test_a_message_published_on_one_worker_reaches_subscribers_on_both_once_in_order(
    start_server: StartServer,
) -> None:
    """Subscribers on either worker get every message once, in one order, at the same positions."""
    server = await start_workers(start_server)
    (started,) = await logged(server, "supervisor_started")
    assert started["workers"] == WORKERS
    topic = unique("room")
    clients = await clients_on_both(server, topic, per_worker=2)
    try:
        assert [node.rsplit("-", 1)[1] for node in sorted(clients)] == ["0", "1"]
        publisher, _ = await open_on(server, unique("publisher"))
        acks = [await publish(publisher, topic, f"body-{n}", f"r{n}") for n in range(20)]
        for held in clients.values():
            for client in held:
                got = await messages(client, 20)
                assert [frame["body"] for frame in got] == [f"body-{n}" for n in range(20)]
                assert [position(frame) for frame in got] == [position(ack) for ack in acks]
        # Once: a frame more would be a repeat; a publish after them comes next on every client.
        (last,) = [await publish(publisher, topic, "last", "r-last")]
        for held in clients.values():
            for client in held:
                assert (await next_frame(client, "message"))["id"] == last["id"]
    finally:
        await publisher.close()
        await close_all(clients)


async def test_a_killed_worker_is_restarted_and_its_clients_recover(start_server: StartServer) -> None:
    """kill -9 of a worker: the supervisor starts it again; its clients reconnect with `since`, on
    either worker, and get what was published meanwhile."""
    server = await start_workers(start_server)
    topic = unique("room")
    clients = await clients_on_both(server, topic)
    victim_node = sorted(clients)[0]
    victim = clients[victim_node][0]
    # Not subscribed, so that its acks are the next frames it gets; on either worker.
    publisher, _ = await open_on(server, unique("publisher"))
    try:
        before = await publish(publisher, topic, "before", "r-before")
        assert (await next_frame(victim, "message"))["id"] == before["id"]
        index = int(victim_node.rsplit("-", 1)[1])
        (started,) = await logged(server, "worker_started", worker=index)
        os.kill(int(started["pid"]), signal.SIGKILL)
        await ended(victim)
        await logged(server, "worker_exited", worker=index, status=-signal.SIGKILL)
        if not publisher_survives(publisher):
            publisher, _ = await open_on(server, unique("publisher"))
        meanwhile = [await publish(publisher, topic, f"meanwhile-{n}", f"r{n}") for n in range(5)]
        await logged(server, "server_listening", count=WORKERS + 1, within=60)
        # Reconnect until one client lands on the restarted worker: its history came from the channel.
        nodes_recovered: set[str] = set()
        for attempt in range(MAX_ATTEMPTS):
            connection, node = await open_on(server, unique(f"back{attempt}"))
            try:
                since = {"epoch": before["epoch"], "offset": before["offset"]}
                await send_frame(connection, type="sub", topic=topic, since=since)
                subscribed = await next_frame(connection, "subscribed")
                assert subscribed["recovered"] is True, subscribed
                replayed = await messages(connection, len(meanwhile))
                assert [frame["id"] for frame in replayed] == [ack["id"] for ack in meanwhile]
                nodes_recovered.add(node)
            finally:
                await connection.close()
            if victim_node in nodes_recovered:
                break
        assert victim_node in nodes_recovered
    finally:
        await publisher.close()
        await close_all(clients)


async def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(start_server: StartServer) -> None:
    """SIGTERM to the supervisor: every client on either worker gets what was queued for it, then 1001."""
    server = await start_workers(start_server)
    topic = unique("room")
    clients = await clients_on_both(server, topic, per_worker=2)
    publisher, _ = await open_on(server, unique("publisher"))
    try:
        acks = [await publish(publisher, topic, f"queued-{n}", f"r{n}") for n in range(30)]
        server.signal(signal.SIGTERM)
        for held in clients.values():
            for client in held:
                got = await messages(client, len(acks))
                assert [frame["id"] for frame in got] == [ack["id"] for ack in acks]
                assert await close_code(client, within=SHUTDOWN_TIMEOUT + 5) == 1001
        assert await asyncio.to_thread(server.wait, scaled(SHUTDOWN_TIMEOUT + 15)) == 0
        stopped = await logged(server, "worker_stopped", count=WORKERS)
        assert [event["status"] for event in stopped] == [0] * WORKERS
        assert server.logged_so_far("worker_exited") == []
    finally:
        await publisher.close()
        await close_all(clients)


async def test_on_kafka_each_worker_is_a_bus_member_of_its_own(
    start_server: StartServer, kafka: KafkaProcess
) -> None:
    """--workers 2 --broker kafka: the workers are named <node>-0 and <node>-1, and a message
    published on one reaches a subscriber on the other through Kafka."""
    server = await start_workers(start_server, *kafka_serve_args(kafka, fresh_kafka_topic(), "k"))
    listening = await logged(server, "server_listening", count=WORKERS)
    assert sorted(event["node"] for event in listening) == ["k-0", "k-1"]
    assert all(event["broker"] == "kafka" for event in listening)
    # Each has its own clients and partitions: publishes are taken once both read Kafka.
    await logged(server, "kafka_connected", count=WORKERS, within=60)
    topic = unique("room")
    clients = await clients_on_both(server, topic)
    publisher, node = await open_on(server, unique("publisher"))
    try:
        ack = await publish(publisher, topic, "through kafka", "r0")
        # Whichever worker the publisher is on, the subscriber on the other gets it through Kafka.
        assert node in clients
        for held in clients.values():
            assert (await next_frame(held[0], "message", within=30))["id"] == ack["id"]
    finally:
        await publisher.close()
        await close_all(clients)


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie, waiting for its new parent to reap it, has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_workers_do_not_outlive_their_supervisor(start_server: StartServer) -> None:
    """kill -9 of the supervisor: the kernel tells each worker (SIGTERM), and each exits."""
    server = await start_workers(start_server)
    pids = [int(event["pid"]) for event in await logged(server, "worker_started", count=WORKERS)]
    server.signal(signal.SIGKILL)
    # A poll: nothing reports the end of a process that is not this one's child.
    assert await asyncio.to_thread(
        processes.wait_until, lambda: all(gone(pid) for pid in pids), scaled(SHUTDOWN_TIMEOUT + 15)
    )
