"""Slow consumers: a subscriber that stops reading is closed with 4000 and delays nobody else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Close, Frame, Opcode

from tests.integration.server_process import ServerProcess
from tests.integration.wire import RawClient, logged, next_frame, open_client, publish, stats
from tests.timeouts import scaled

QUEUE_SIZE = 16
# Pings off, so that only the slow-consumer path can end a connection that never reads.
OPTIONS = ("--queue-size", str(QUEUE_SIZE), "--rate-limit", "0", "--ping-interval", "0", "--tick", "0")
# 9 MB in all: more than a connection's kernel buffers, its write buffer and its queue hold.
BODIES = [f"{number:04d}:" + "x" * (30 * 1024) for number in range(300)]


async def publish_all(connection: ClientConnection) -> list[dict[str, Any]]:
    """Publish every body on "load", each after the previous one's ack; the acks."""
    return [await publish(connection, "load", body, f"p-{number}") for number, body in enumerate(BODIES)]


async def test_slow_consumer_is_closed_with_4000_while_others_keep_receiving(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A subscriber that stops reading gets 4000 "slow consumer"; the others get every message and ack."""
    # A long close timeout: the closing handshake must still be pending when `slow` reads at the end.
    server = start_server(*OPTIONS, "--close-timeout", str(scaled(30)))
    slow = await RawClient.connect(server, "slow", "load")
    try:
        async with (
            await open_client(server, "fast", "load") as fast,
            await open_client(server, "publisher") as publisher,
        ):

            async def receive_all() -> list[dict[str, Any]]:
                return [await next_frame(fast, "message") for _ in BODIES]

            async with asyncio.timeout(scaled(30)):
                received, acks = await asyncio.gather(receive_all(), publish_all(publisher))
        assert [message["body"] for message in received] == BODIES
        assert [message["id"] for message in received] == [ack["id"] for ack in acks]
        (closed,) = await logged(server, "slow_consumer_closed")
        assert closed["queue_size"] == QUEUE_SIZE
        counters = await stats(server)
        assert (counters["slow_consumer_closes"], counters["messages_published"]) == (1, len(BODIES))

        # Reading now, `slow` finds a prefix of the messages, then the close frame.
        seen: list[str] = []
        async with asyncio.timeout(scaled(10)):
            while isinstance(frame := await slow.next_event(), Frame) and frame.opcode is Opcode.TEXT:
                seen.append(json.loads(bytes(frame.data))["id"])
        assert isinstance(frame, Frame), frame
        assert frame.opcode is Opcode.CLOSE, frame
        assert Close.parse(bytes(frame.data)) == Close(4000, "slow consumer")
        assert seen == [ack["id"] for ack in acks[: len(seen)]]
        assert len(seen) < len(BODIES)
    finally:
        slow.close()


async def test_slow_consumer_that_never_reads_is_dropped_within_close_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A slow consumer that never reads its 4000 close frame is dropped once --close-timeout passes."""
    close_timeout = 0.5
    server = start_server(*OPTIONS, "--close-timeout", str(close_timeout))
    slow = await RawClient.connect(server, "slow", "load")
    try:
        async with await open_client(server, "publisher") as publisher:
            await publish_all(publisher)
            (closed,) = await logged(server, "slow_consumer_closed")
            await logged(
                server, "client_disconnected", within=close_timeout + 2, connection_id=closed["connection_id"]
            )
            assert (await stats(server))["connections"] == 1
    finally:
        slow.close()
