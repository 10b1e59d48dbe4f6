"""Graceful shutdown: SIGTERM or SIGINT closes every client with 1001 and the process exits in time."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest
from websockets.frames import Close, Opcode

from tests.integration.server_process import ServerProcess
from tests.integration.wire import RawClient, close_code, logged, open_client
from tests.timeouts import scaled

CLIENTS = 20
SHUTDOWN_TIMEOUT = 2.0
# Slack for process scheduling and interpreter teardown on top of the shutdown timeout.
MARGIN = 3.0


async def assert_stops_in_time(server: ServerProcess, signalled_at: float) -> None:
    """The process exits 0 within the shutdown timeout (and a margin) of the signal, having logged it."""
    assert await asyncio.to_thread(server.wait, scaled(SHUTDOWN_TIMEOUT + MARGIN)) == 0
    assert time.monotonic() - signalled_at < scaled(SHUTDOWN_TIMEOUT + MARGIN)
    await logged(server, "server_stopped")


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
