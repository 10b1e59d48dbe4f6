"""The server answers health checks and greets a WebSocket client."""

from __future__ import annotations

from tests.integration.server_process import ServerProcess
from tests.integration.wire import http_get, next_frame, open_client


async def test_healthz_answers_200(server: ServerProcess) -> None:
    assert http_get(server, "/healthz") == (200, "ok\n")


async def test_first_frame_is_success(server: ServerProcess) -> None:
    from websockets.asyncio.client import connect

    async with connect(server.url("/subscribe/id:alice/topic:news")) as connection:
        assert await next_frame(connection) == {
            "type": "success",
            "uid": "alice",
            "node": f"{__import__('socket').gethostname()}:{server.port}",
            "topics": ["news"],
        }
    client = await open_client(server, "bob")
    await client.close()
