"""Slow consumers: a subscriber that stops reading is closed with 4000, delays nobody else, and holds
no more of the server's memory than --queue-bytes."""

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
    server = start_server(*OPTIONS, "--close-timeout", str(close_timeout), "-v")
    slow = await RawClient.connect(server, "slow", "load")
    try:
        async with await open_client(server, "publisher") as publisher:
            await publish_all(publisher)
            (closed,) = await logged(server, "slow_consumer_closed")
            (disconnected,) = await logged(
                server, "client_disconnected", within=close_timeout + 2, connection_id=closed["connection_id"]
            )
            assert (await stats(server))["connections"] == 1
        # The server's close, though the client never answered it; and what it never got.
        assert (disconnected["code"], disconnected["closed_by"]) == (4000, "server"), disconnected
        assert disconnected["reason"] == "slow consumer"
        assert disconnected["frames_dropped"] > 0, disconnected
    finally:
        slow.close()


# Never-reading clients against the byte bound: 60 KB messages, fewer than the frame bound, so that
# only the byte bound can close a client before it holds everything published.
NEVER_READING = 8
QUEUE_BYTES = 256 * 1024
BIG_BODIES = [f"{number:04d}:" + "y" * (60 * 1024) for number in range(400)]
# What the server's RSS may grow by beyond the never-reading clients' bound: the publisher's and
# the honest subscriber's buffers, the frames in flight, the allocator's slack. Measured: no growth
# at all with the bound (the allocator reuses what start-up freed); without it the same run grew
# by 19 MiB, the frames the never-reading clients held.
FIXED_OVERHEAD = 8 * 2**20


async def test_clients_that_never_read_are_closed_at_the_byte_bound_and_hold_no_more_than_it(
    start_server: Callable[..., ServerProcess],
) -> None:
    """N clients that never read, a flood of 60 KB messages: each is closed as a slow consumer (4000,
    dropped after the close timeout), an honest subscriber gets every message, and the server's RSS
    grows by less than N x --queue-bytes plus a fixed overhead."""
    server = start_server(
        "-v",
        *OPTIONS[2:],  # all but --queue-size: frames enough for every message
        "--queue-size",
        str(len(BIG_BODIES) + 10),
        "--queue-bytes",
        str(QUEUE_BYTES),
        "--history-size",
        "1",
        "--close-timeout",
        "0.5",
        # /stats is read every ten messages for the peak RSS, then for the counts at once: each
        # request must be rendered anew, not answered with the rendering of up to a second ago.
        "--metrics-max-age",
        "0",
    )
    never_reading = [
        await RawClient.connect(server, f"never-{number}", "load") for number in range(NEVER_READING)
    ]
    try:
        async with (
            await open_client(server, "honest", "load", max_size=None) as honest,
            await open_client(server, "publisher") as publisher,
        ):
            # After a first message has gone through, so that start-up allocations are not counted.
            await publish(publisher, "load", "warm-up", "warm-up")
            assert (await next_frame(honest, "message"))["body"] == "warm-up"
            before = (await stats(server))["process"]["rss_bytes"]
            peak = before

            async def receive_all() -> list[str]:
                return [(await next_frame(honest, "message"))["body"] for _ in BIG_BODIES]

            async def publish_and_sample() -> None:
                nonlocal peak
                for number, body in enumerate(BIG_BODIES):
                    await publish(publisher, "load", body, f"p-{number}")
                    if number % 10 == 0:
                        peak = max(peak, (await stats(server))["process"]["rss_bytes"])

            async with asyncio.timeout(scaled(60)):
                received, _ = await asyncio.gather(receive_all(), publish_and_sample())
            assert received == BIG_BODIES
            closed = await logged(server, "slow_consumer_closed", count=NEVER_READING)
            assert all(event["pending_bytes"] < QUEUE_BYTES + 70 * 1024 for event in closed), closed
            for event in closed:
                await logged(server, "client_disconnected", connection_id=event["connection_id"])
            counters = await stats(server)
            peak = max(peak, counters["process"]["rss_bytes"])
            assert (counters["slow_consumer_closes"], counters["connections"]) == (NEVER_READING, 2)
            growth = peak - before
            assert growth < NEVER_READING * QUEUE_BYTES + FIXED_OVERHEAD, (
                f"RSS grew by {growth / 2**20:.1f} MiB"
            )
        for client in never_reading:
            # What it finally reads: some frames, then the close frame, or the connection cut.
            async with asyncio.timeout(scaled(10)):
                try:
                    while (
                        isinstance(frame := await client.next_event(), Frame) and frame.opcode is Opcode.TEXT
                    ):
                        pass
                except (EOFError, ConnectionResetError):
                    continue
            assert isinstance(frame, Frame), frame
            assert frame.opcode is Opcode.CLOSE, frame
            assert Close.parse(bytes(frame.data)).code == 4000
    finally:
        for client in never_reading:
            client.close()
