"""Graceful shutdown: SIGTERM or SIGINT closes every client with 1001 and the process exits in time."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from websockets.frames import Close, Opcode

from tests.integration.server_process import ServerProcess
from tests.integration.wire import RawClient, close_received, logged, open_client
from tests.timeouts import scaled

CLIENTS = 20
SHUTDOWN_TIMEOUT = 2.0
# Slack for process scheduling and interpreter teardown on top of the shutdown timeout.
MARGIN = 3.0


async def exit_code(server: ServerProcess, within: float) -> int:
    """The process's return code, waited for without blocking the event loop; fail if it runs on."""
    try:
        return await asyncio.to_thread(server.wait, scaled(within))
    except subprocess.TimeoutExpired:
        assert server.process is not None
        server.process.kill()
        pytest.fail(f"server did not exit within {scaled(within)} s; last events: {server.events[-5:]}")


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
        closes = await asyncio.gather(*(close_received(client) for client in clients))
        assert all(close is not None and close.code == 1001 for close in closes), closes

        assert await exit_code(server, SHUTDOWN_TIMEOUT + MARGIN) == 0
        assert time.monotonic() - signalled_at < scaled(SHUTDOWN_TIMEOUT + MARGIN)
        (stopping,) = await logged(server, "server_stopping")
        assert stopping["connections"] == CLIENTS
        await logged(server, "server_stopped")
        assert server.logged_so_far("shutdown_timed_out") == []
    finally:
        for client in clients:
            await client.close()


async def test_client_that_never_answers_the_close_does_not_delay_exit_past_shutdown_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A client that never completes the closing handshake is dropped when the shutdown timeout expires."""
    server = start_server(
        *("--tick", "0"),
        *("--close-timeout", "30"),
        *("--shutdown-timeout", str(SHUTDOWN_TIMEOUT)),
    )
    mute = await RawClient.connect(server, "mute", "news")
    polite = await open_client(server, "polite", "news")
    try:
        signalled_at = time.monotonic()
        server.signal(signal.SIGTERM)
        polite_close = await close_received(polite)
        assert polite_close is not None
        assert polite_close.code == 1001

        assert await exit_code(server, SHUTDOWN_TIMEOUT + MARGIN) == 0
        assert time.monotonic() - signalled_at < scaled(SHUTDOWN_TIMEOUT + MARGIN)
        await logged(server, "shutdown_timed_out")
        await logged(server, "server_stopped")

        # The silent client was sent its 1001 too, but its TCP connection was cut without a reply.
        async with asyncio.timeout(scaled(MARGIN)):
            received = [frame async for frame in mute.frames()]
        closes = [Close.parse(frame.data) for frame in received if frame.opcode is Opcode.CLOSE]
        assert [close.code for close in closes] == [1001]
    finally:
        mute.close()
        await polite.close()
