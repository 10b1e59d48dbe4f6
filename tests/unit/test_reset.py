"""Dropping a connection resets it: the client learns at once, and no unsent data outlives it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from minimess.adapters.websocket_server.reset import reset
from tests.timeouts import scaled


async def read_to_the_end(client: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    while await loop.sock_recv(client, 65536):
        pass


async def test_a_dropped_connection_with_unsent_data_is_reset_not_closed_behind_the_data() -> None:
    """A client that reads after being dropped meets a reset, not the rest of the data and a FIN."""
    dropped = asyncio.Event()

    def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # More than the loopback socket buffers take from a client that does not read.
        writer.write(b"x" * 8 * 2**20)
        reset(writer.transport)
        dropped.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(client, server.sockets[0].getsockname())
        async with asyncio.timeout(scaled(5)):
            await dropped.wait()
            with pytest.raises(ConnectionResetError):
                await read_to_the_end(client)
    finally:
        client.close()
        server.close()
        await server.wait_closed()
