"""Client-side helpers for integration tests: connect, send frames, wait for frames."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import parse_uri

from tests.integration.server_process import ServerProcess
from tests.timeouts import scaled


def subscribe_path(uid: str, *topics: str) -> str:
    return f"/subscribe/id:{uid}" + "".join(f"/topic:{topic}" for topic in topics)


async def open_client(server: ServerProcess, uid: str, *topics: str, **options: Any) -> ClientConnection:
    """Connect as `uid` on `topics` and consume the `success` frame."""
    connection = await connect(server.url(subscribe_path(uid, *topics)), open_timeout=scaled(10), **options)
    success = await next_frame(connection)
    assert success["type"] == "success", success
    return connection


async def send_frame(connection: ClientConnection, **frame: Any) -> None:
    await connection.send(json.dumps(frame))


async def next_frame(connection: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    """The next frame of any type, decoded."""
    async with asyncio.timeout(scaled(within)):
        data = await connection.recv()
    document = json.loads(data)
    assert isinstance(document, dict)
    return document


async def frame_of_type(connection: ClientConnection, kind: str, within: float = 10.0) -> dict[str, Any]:
    """The next frame of type `kind`, skipping `time` ticks; fail on any other frame."""
    async with asyncio.timeout(scaled(within)):
        while True:
            document = json.loads(await connection.recv())
            if document["type"] == "time":
                continue
            assert document["type"] == kind, document
            return dict(document)


def http_get(server: ServerProcess, path: str) -> tuple[int, str]:
    """Status and body of a plain HTTP GET."""
    try:
        with urllib.request.urlopen(server.http_url(path), timeout=scaled(10)) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def stats(server: ServerProcess) -> dict[str, Any]:
    status, body = http_get(server, "/stats")
    assert status == 200
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


async def logged(server: ServerProcess, name: str, within: float = 10.0) -> dict[str, Any]:
    """The first event called `name` the server logged, waited for without blocking the event loop."""
    return await asyncio.to_thread(server.wait_for_event, name, scaled(within))


async def fetch_stats(server: ServerProcess) -> dict[str, Any]:
    """The server's /stats document, fetched without blocking the event loop."""
    return await asyncio.to_thread(stats, server)


async def close_received(connection: ClientConnection, within: float = 10.0) -> Close | None:
    """Read and drop frames until the connection closes; the close frame the server sent, if any."""
    async with asyncio.timeout(scaled(within)):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed as closed:
            return closed.rcvd


async def open_silent_client(
    server: ServerProcess, uid: str, *topics: str, within: float = 10.0
) -> tuple[AsyncIterator[Frame], asyncio.StreamWriter]:
    """Complete the WebSocket handshake over raw TCP, then never write again: no pong, no close reply.

    The client is driven by websockets' sans-I/O ClientProtocol; what it queues after the handshake
    is never sent. Frames arrive from the returned iterator until the server ends the TCP connection;
    the writer is returned so that the test can drop the connection when it is done.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    protocol = ClientProtocol(parse_uri(server.url(subscribe_path(uid, *topics))))
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    events: list[Event] = []
    async with asyncio.timeout(scaled(within)):
        while not events:
            data = await reader.read(65536)
            assert data, "the server closed the connection during the handshake"
            protocol.receive_data(data)
            events = protocol.events_received()
    response, *frames = events
    assert isinstance(response, Response), response
    assert response.status_code == 101, response
    assert protocol.state is State.OPEN, protocol.handshake_exc
    return _silent_frames(protocol, reader, frames), writer


async def _silent_frames(
    protocol: ClientProtocol, reader: asyncio.StreamReader, pending: list[Event]
) -> AsyncIterator[Frame]:
    """Frames parsed from `reader` (after `pending` ones), until EOF; nothing is ever sent back."""
    while True:
        for event in pending:
            assert isinstance(event, Frame), event
            yield event
        data = await reader.read(65536)
        if not data:
            protocol.receive_eof()
            return
        protocol.receive_data(data)
        pending = protocol.events_received()
