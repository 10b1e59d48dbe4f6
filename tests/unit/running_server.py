"""A minimess server running in the test's own event loop on a loopback port, with its log events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect

from minimess.adapters.websocket_server.server import WebSocketServer
from minimess.bootstrap.server import Container
from tests.timeouts import scaled


async def next_frame(connection: ClientConnection) -> dict[str, Any]:
    """The next frame the server sends, decoded; fail after a scaled timeout."""
    async with asyncio.timeout(scaled(10)):
        document = json.loads(await connection.recv())
    assert isinstance(document, dict)
    return document


@attrs.define
class RunningServer:
    """A server serving in this event loop, and every log event since it started."""

    server: WebSocketServer
    port: int
    logs: list[MutableMapping[str, Any]]

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry["event"] == name]

    def connection_id(self, uid: str) -> str:
        (connected,) = [entry for entry in self.events("client_connected") if entry["uid"] == uid]
        connection_id = connected["connection_id"]
        assert isinstance(connection_id, str)
        return connection_id

    async def client(self, uid: str, *topics: str) -> ClientConnection:
        """Connect as `uid` on `topics` and consume the `success` frame."""
        path = f"/subscribe/id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)
        connection = await connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=scaled(10))
        assert (await next_frame(connection))["type"] == "success"
        return connection


@asynccontextmanager
async def running_server(container: Container) -> AsyncIterator[RunningServer]:
    """Serve `container`'s server (give it port 0) until the block ends, then stop and wait for it.

    Build the container with bootstrap.build_container; override its providers to put fakes in.
    """
    server = container.server()
    stop = asyncio.Event()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        task = asyncio.create_task(server.run(stop))
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait([task, listening], timeout=scaled(10), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        assert server.listening.is_set(), task
        try:
            yield RunningServer(server=server, port=server.port, logs=logs)
        finally:
            stop.set()
            async with asyncio.timeout(scaled(15)):
                await task
