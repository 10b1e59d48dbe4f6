"""Keepalive: a client that stops answering pings is closed, one that answers them stays connected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Event

from tests.integration.server_process import ServerProcess
from tests.integration.wire import RawClient, logged, next_frame, open_client, send_frame, stats
from tests.timeouts import scaled

PING_INTERVAL = 0.5
# Long enough that the answering client's pong, from this process, is never late on a busy
# machine; the silent client is closed this long after its first ping all the same.
PING_TIMEOUT = 1.5
CLOSE_TIMEOUT = 0.5
# Slack for process scheduling on top of the keepalive bounds.
MARGIN = 1.0
KEEPALIVE_OPTIONS = (
    *("--ping-interval", str(PING_INTERVAL)),
    *("--ping-timeout", str(PING_TIMEOUT)),
    *("--close-timeout", str(CLOSE_TIMEOUT)),
)


class PingCountingConnection(ClientConnection):
    """A websockets client connection (which answers pings by itself) that counts the pings it gets."""

    def __init__(self, protocol: ClientProtocol, **options: Any) -> None:
        super().__init__(protocol, **options)
        # Pings received so far; the protocol has queued a pong for each by the time it is counted.
        self.pings = 0
        self.ping_received = asyncio.Event()

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1
            self.ping_received.set()
        super().process_event(event)


async def test_a_client_that_never_answers_pings_is_closed_with_1011_and_one_that_does_stays(
    start_server: Callable[..., ServerProcess],
) -> None:
    """The silent client gets 1011 "ping timeout", then loses its TCP connection; a websockets client,
    which answers every ping, is still served after several ping intervals."""
    server = start_server(*KEEPALIVE_OPTIONS)
    alive = await open_client(server, "alive", "news", create_connection=PingCountingConnection)
    assert isinstance(alive, PingCountingConnection)
    ghost = await RawClient.connect(server, "ghost", "news")
    connected_at = time.monotonic()
    try:
        pings = 0
        close: Close | None = None
        async with asyncio.timeout(scaled(PING_INTERVAL + PING_TIMEOUT + MARGIN)):
            async for frame in ghost.frames():
                if frame.opcode is Opcode.PING:
                    pings += 1
                elif frame.opcode is Opcode.CLOSE:
                    close = Close.parse(frame.data)
                    break
        closed_after = time.monotonic() - connected_at
        assert close == Close(1011, "ping timeout"), close
        assert pings >= 1
        assert closed_after >= PING_INTERVAL + PING_TIMEOUT * 0.9
        # The close reply never comes, so the server drops the TCP connection after its close timeout.
        async with asyncio.timeout(scaled(CLOSE_TIMEOUT + MARGIN)):
            assert [frame async for frame in ghost.frames()] == []

        async with asyncio.timeout(scaled(4 * (PING_INTERVAL + PING_TIMEOUT) + MARGIN)):
            while alive.pings < 4:
                alive.ping_received.clear()
                await alive.ping_received.wait()
        await send_frame(alive, type="pub", topic="news", body="still here", ref="p-1")
        assert (await next_frame(alive, "message"))["body"] == "still here"
        assert (await next_frame(alive, "ack"))["ref"] == "p-1"
    finally:
        ghost.close()
        await alive.close()

    (inactive,) = await logged(server, "client_inactive")
    assert inactive["ping_timeout"] == PING_TIMEOUT
    assert (await stats(server))["inactive_closes"] == 1
