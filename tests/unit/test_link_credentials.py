"""ServerLink with a token: sent as a bearer token, read again from its file on every connection,
and a refusal at the handshake ends the link instead of retrying for ever."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.credentials import Credentials
from minimess.adapters.websocket_client.link import ServerLink
from minimess.domain.errors import CannotAuthenticate
from minimess.domain.model import Uid
from tests.timeouts import scaled
from tests.unit.test_link import RecordingEvents

GOOD = "good.token.1"
FRESH = "good.token.2"


class TokenServer:
    """Admits the tokens in `valid` (else 401 with a reason), greets, and closes with 4001 when told."""

    def __init__(self) -> None:
        self.valid = {GOOD, FRESH}
        # The Authorization header of every handshake, in order (None: there was none).
        self.presented: list[str | None] = []
        self.connections: list[ServerConnection] = []
        self.changed = asyncio.Event()
        self._server: Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        self.presented.append(header)
        self.changed.set()
        if header is None:
            return connection.respond(401, "no token: send Authorization: Bearer <token>\n")
        if header.removeprefix("Bearer ") not in self.valid:
            return connection.respond(401, "token expired\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        await connection.send(json.dumps({"type": "success", "uid": "alice", "node": "unit:1", "topics": []}))
        self.changed.set()
        await connection.wait_closed()

    async def until(self, handshakes: int) -> None:
        async with asyncio.timeout(scaled(5)):
            while len(self.presented) < handshakes:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def server() -> AsyncIterator[TokenServer]:
    token_server = TokenServer()
    await token_server.start()
    yield token_server
    await token_server.stop()


def link_to(server: TokenServer, credentials: Credentials) -> ServerLink:
    return ServerLink(
        server.url,
        Uid("alice"),
        (),
        Backoff(0.05, 0.05, uniform=lambda _low, high: high),
        ack_timeout=10,
        queue_size=10,
        open_timeout=scaled(10),
        credentials=credentials,
    )


async def run_until_refused(link: ServerLink, events: RecordingEvents) -> CannotAuthenticate:
    with pytest.raises(CannotAuthenticate) as refused:
        async with asyncio.timeout(scaled(5)):
            await link.run(events)
    return refused.value


async def test_the_token_goes_in_an_authorization_bearer_header(server: TokenServer) -> None:
    events = RecordingEvents(lambda: None)
    link = link_to(server, Credentials(token=GOOD))
    task = asyncio.create_task(link.run(events))
    await server.until(1)
    link.close()
    await asyncio.wait_for(task, scaled(5))
    assert server.presented == [f"Bearer {GOOD}"]


async def test_after_a_4001_the_link_reconnects_with_the_token_file_read_again(
    server: TokenServer, tmp_path: Path
) -> None:
    """A rotated file gives a fresh token; the user reads that the token expired."""
    token_file = tmp_path / "token"
    token_file.write_text(GOOD + "\n")
    events = RecordingEvents(lambda: None)
    link = link_to(server, Credentials(token_file=str(token_file)))
    task = asyncio.create_task(link.run(events))
    await server.until(1)
    async with asyncio.timeout(scaled(5)):
        while not server.connections:
            server.changed.clear()
            await server.changed.wait()
    token_file.write_text(FRESH + "\n")
    server.valid.discard(GOOD)
    await server.connections[0].close(4001, "token expired")
    await server.until(2)
    link.close()
    await asyncio.wait_for(task, scaled(5))
    assert server.presented == [f"Bearer {GOOD}", f"Bearer {FRESH}"]
    assert ("the token expired", 0.05) in events.of("disconnected")


async def test_a_refused_token_ends_the_link_with_the_servers_reason_and_no_retry(
    server: TokenServer,
) -> None:
    server.valid.clear()
    events = RecordingEvents(lambda: None)
    refused = await run_until_refused(link_to(server, Credentials(token=GOOD)), events)
    assert str(refused) == (
        "the server refused the token: HTTP 401: token expired;"
        " get a fresh token (minimess token) and start the client again"
    )
    assert len(server.presented) == 1
    assert events.of("disconnected") == []


async def test_without_a_token_a_401_says_how_to_give_one(server: TokenServer) -> None:
    refused = await run_until_refused(link_to(server, Credentials()), RecordingEvents(lambda: None))
    assert "HTTP 401: no token: send Authorization: Bearer <token>;" in str(refused)
    assert "--token, --token-file or MINIMESS_TOKEN" in str(refused)
    assert server.presented == [None]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read the token file"), ("", "holds no token"), ("two words", "holds no token")],
)
async def test_a_token_file_that_cannot_serve_ends_the_link_before_connecting(
    server: TokenServer, tmp_path: Path, content: str | None, reason: str
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    link = link_to(server, Credentials(token_file=str(token_file)))
    refused = await run_until_refused(link, RecordingEvents(lambda: None))
    assert reason in str(refused)
    assert server.presented == []
