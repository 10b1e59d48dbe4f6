"""Slow consumers: a subscriber that stops reading is closed with 4000 and delays nobody else."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tests.integration.server_process import ServerProcess
from tests.integration.wire import (
    frame_of_type,
    logged,
    next_frame,
    open_client,
    send_frame,
    stats,
    subscribe_path,
)
from tests.timeouts import scaled

MESSAGES = 300
BODY_BYTES = 30 * 1024
QUEUE_SIZE = 16
# Set before connecting, a small receive buffer keeps the slow client's kernel from absorbing the load.
SLOW_RECEIVE_BUFFER = 4096


async def open_stalled_client(server: ServerProcess, uid: str, *topics: str) -> ClientConnection:
    """A client that reads nothing until its application calls recv(): tiny socket buffer, queue of one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RECEIVE_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    connection = await connect(
        server.url(subscribe_path(uid, *topics)),
        sock=sock,
        max_queue=1,
        open_timeout=scaled(10),
    )
    success = await next_frame(connection)
    assert success["type"] == "success", success
    return connection


async def collect_messages(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` message frames, skipping time ticks."""
    return [await frame_of_type(connection, "message") for _ in range(count)]


async def read_until_closed(connection: ClientConnection) -> tuple[list[dict[str, Any]], Close | None]:
    """Every frame left on the connection, decoded, and the close frame the server sent."""
    frames = []
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                frames.append(json.loads(await connection.recv()))
        except ConnectionClosed as closed:
            return frames, closed.rcvd


async def publish_all(connection: ClientConnection, topic: str, bodies: list[str]) -> list[dict[str, Any]]:
    """Publish each body and wait for its ack before the next, as a well-behaved client does."""
    acks = []
    for number, body in enumerate(bodies):
        await send_frame(connection, type="pub", topic=topic, body=body, ref=f"p-{number}")
        acks.append(await frame_of_type(connection, "ack"))
    return acks


async def test_slow_consumer_is_closed_with_4000_while_others_keep_receiving(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A subscriber that stops reading gets 4000 "slow consumer"; the others get every message and ack."""
    server = start_server(
        *("--queue-size", str(QUEUE_SIZE)),
        *("--rate-limit", "0"),
        *("--close-timeout", "10"),
        *("--tick", "0"),
    )
    slow = await open_stalled_client(server, "slow", "load")
    fast = await open_client(server, "fast", "load")
    publisher = await open_client(server, "publisher")
    bodies = [f"{number:04d}:" + "x" * (BODY_BYTES - 5) for number in range(MESSAGES)]
    try:
        received, acks = await asyncio.gather(
            collect_messages(fast, MESSAGES),
            publish_all(publisher, "load", bodies),
        )
        assert [ack["ref"] for ack in acks] == [f"p-{number}" for number in range(MESSAGES)]
        assert [message["body"] for message in received] == bodies
        assert [message["id"] for message in received] == [ack["id"] for ack in acks]

        (closed,) = await logged(server, "slow_consumer_closed")
        assert closed["queue_size"] == QUEUE_SIZE
        counters = await stats(server)
        assert counters["slow_consumer_closes"] == 1
        assert counters["messages_published"] == MESSAGES

        # Read what the slow client was sent: a prefix of the messages, then the close frame.
        slow_messages, close = await read_until_closed(slow)
        assert close == Close(4000, "slow consumer")
        assert len(slow_messages) < MESSAGES
        assert [m["id"] for m in slow_messages] == [m["id"] for m in received[: len(slow_messages)]]
    finally:
        for connection in (slow, fast, publisher):
            await connection.close()
