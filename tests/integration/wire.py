"""Client-side helpers for integration tests: connect, send frames, wait for frames."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

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
