"""Graceful shutdown: SIGTERM or SIGINT hands every client what was queued for it, closes it with 1001,
and the process exits in time."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.frames import Close, Frame, Opcode

from tests.integration.server_process import ServerProcess
from tests.integration.wire import RawClient, close_code, logged, open_client, publish
from tests.timeouts import scaled

CLIENTS = 20
SHUTDOWN_TIMEOUT = 2.0
# Slack for process scheduling and interpreter teardown on top of the shutdown timeout.
MARGIN = 3.0
# Queues long enough for every message, in frames and in bytes, so that a subscriber that is behind
# is not a slow consumer; pings off, so that only the shutdown can end a connection that does not read.
DRAIN_OPTIONS = (
    *("--tick", "0", "--rate-limit", "0", "--ping-interval", "0"),
    *("--queue-size", "1000", "--queue-bytes", str(64 * 2**20)),
)
# 9 MB in all: more than a connection's kernel buffers and write buffer hold, so that most of it
# waits in the server's outbound queue of a subscriber that does not read.
BODIES = [f"{number:04d}:" + "x" * (30 * 1024) for number in range(300)]


async def assert_stops_in_time(server: ServerProcess, signalled_at: float) -> None:
    """The process exits 0 within the shutdown timeout (and a margin) of the signal, having logged it."""
    assert await asyncio.to_thread(server.wait, scaled(SHUTDOWN_TIMEOUT + MARGIN)) == 0
    assert time.monotonic() - signalled_at < scaled(SHUTDOWN_TIMEOUT + MARGIN)
    await logged(server, "server_stopped")


async def publish_all(connection: ClientConnection) -> list[str]:
    """Publish every body on "load", each after the previous one's ack; the ids the acks gave."""
    return [
        (await publish(connection, "load", body, f"p-{number}"))["id"] for number, body in enumerate(BODIES)
    ]


async def connection_id(server: ServerProcess, uid: str) -> str:
    (connected,) = await logged(server, "client_connected", uid=uid)
    return str(connected["connection_id"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_every_client_with_1001_and_exits(
    start_server: Callable[..., ServerProcess], signum: signal.Signals
) -> None:
    """On SIGTERM or SIGINT every client gets close code 1001 and the process exits 0 in time."""
    server = start_server("--tick", "0", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    clients = await asyncio.gather(
        *(open_client(server, f"user-{n}", *(["news"] if n % 2 else [])) for n in range(CLIENTS))
    )
    try:
        signalled_at = time.monotonic()
        server.signal(signum)
        assert await asyncio.gather(*(close_code(client) for client in clients)) == [1001] * CLIENTS

        await assert_stops_in_time(server, signalled_at)
        (stopping,) = await logged(server, "server_stopping")
        assert stopping["connections"] == CLIENTS
        # server_stopped is logged after it.
        assert server.logged_so_far("shutdown_timed_out") == []
    finally:
        for client in clients:
            await client.close()


async def test_client_that_never_answers_the_close_does_not_delay_exit_past_shutdown_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A client that never completes the closing handshake is dropped when the shutdown timeout expires."""
    server = start_server("--tick", "0", "--close-timeout", "30", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    mute = await RawClient.connect(server, "mute", "news")
    polite = await open_client(server, "polite", "news")
    try:
        signalled_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert await close_code(polite) == 1001
        await assert_stops_in_time(server, signalled_at)
        await logged(server, "shutdown_timed_out")

        # The silent client was sent its 1001 too, but its TCP connection was cut without a reply.
        async with asyncio.timeout(scaled(MARGIN)):
            received = [frame async for frame in mute.frames()]
        closes = [Close.parse(frame.data) for frame in received if frame.opcode is Opcode.CLOSE]
        assert [close.code for close in closes] == [1001]
    finally:
        mute.close()
        await polite.close()


async def test_a_subscriber_that_was_behind_gets_every_acknowledged_message_before_the_1001(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Messages still queued for a subscriber when the signal comes all reach it, in order, then 1001."""
    # The subscriber never answers the close, so the server waits --close-timeout for it at the end.
    server = start_server(*DRAIN_OPTIONS, "--close-timeout", "1", "--shutdown-timeout", str(scaled(30)))
    behind = await RawClient.connect(server, "behind", "load")
    try:
        async with await open_client(server, "publisher") as publisher:
            acknowledged = await publish_all(publisher)
            server.signal(signal.SIGTERM)
            (stopping,) = await logged(server, "server_stopping")
            # The server itself still held messages for the subscriber, not only the kernel's buffers.
            assert stopping["frames_queued"] > 0, stopping

            received: list[str] = []
            async with asyncio.timeout(scaled(30)):
                while isinstance(frame := await behind.next_event(), Frame) and frame.opcode is Opcode.TEXT:
                    received.append(json.loads(bytes(frame.data))["id"])
            assert received == acknowledged
            assert isinstance(frame, Frame), frame
            assert frame.opcode is Opcode.CLOSE, frame
            assert Close.parse(bytes(frame.data)) == Close(1001, "server shutting down")

        assert await asyncio.to_thread(server.wait, scaled(30)) == 0
        (stopped,) = await logged(server, "server_stopped")
        assert (stopped["drain_lost_connections"], stopped["drain_lost_frames"]) == (0, 0)
        assert server.logged_so_far("shutdown_frames_lost") == []
    finally:
        behind.close()


async def test_a_subscriber_that_does_not_read_is_dropped_at_the_deadline_and_its_loss_counted(
    start_server: Callable[..., ServerProcess],
) -> None:
    """What a subscriber has not taken by --shutdown-timeout is lost, logged and counted; exit is in time."""
    server = start_server(*DRAIN_OPTIONS, "-v", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    mute = await RawClient.connect(server, "mute", "load")
    try:
        async with await open_client(server, "publisher") as publisher:
            await publish_all(publisher)
            signalled_at = time.monotonic()
            server.signal(signal.SIGTERM)
            await assert_stops_in_time(server, signalled_at)

        (stopping,) = await logged(server, "server_stopping")
        (lost,) = await logged(server, "shutdown_frames_lost")
        assert lost["connection_id"] == await connection_id(server, "mute")
        assert 0 < lost["frames"] <= stopping["frames_queued"]
        (stopped,) = await logged(server, "server_stopped")
        assert (stopped["drain_lost_connections"], stopped["drain_lost_frames"]) == (1, lost["frames"])
    finally:
        mute.close()
