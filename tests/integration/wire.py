"""Client-side helpers for integration tests: connect, send and wait for frames, HTTP, logged events."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import parse_uri

from tests.integration.server_process import LogEvent, ServerProcess, wait_logged
from tests.timeouts import scaled


def unique(prefix: str) -> str:
    """A uid or topic no other test uses, so that tests sharing a server cannot see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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


async def next_frame(
    connection: ClientConnection, kind: str | None = None, within: float = 10.0
) -> dict[str, Any]:
    """The next frame, decoded; with `kind`, the next but `time` ticks, which must be of that type."""
    async with asyncio.timeout(scaled(within)):
        while True:
            document = json.loads(await connection.recv())
            assert isinstance(document, dict)
            if kind is None or document["type"] != "time":
                break
    assert kind in (None, document["type"]), document
    return document


async def publish(connection: ClientConnection, topic: str, body: str, ref: str) -> dict[str, Any]:
    """Publish `body` on `topic` and wait for the ack (skipping ticks; not subscribed to it); the ack."""
    await send_frame(connection, type="pub", topic=topic, body=body, ref=ref)
    ack = await next_frame(connection, "ack")
    assert ack["ref"] == ref, ack
    return ack


async def http_get(server: ServerProcess, path: str) -> tuple[int, str]:
    """Status and body of a plain HTTP GET, without blocking the event loop."""

    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(server.http_url(path), timeout=scaled(10)) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(get)


async def stats(server: ServerProcess) -> dict[str, Any]:
    """The server's /stats document."""
    status, body = await http_get(server, "/stats")
    assert status == 200
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


class MetricsScrape:
    """One scrape of a server's /metrics, parsed as Prometheus parses it."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` with exactly these labels; 0 for a series not there (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """The sum of every series of `name`."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of `name`, by its labels."""
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def http_request(
    url: str, method: str = "GET", token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a plain HTTP request to `url` (any port), with an admin token if given."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        request = urllib.request.Request(url, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def scrape(url: str, token: str | None = None) -> MetricsScrape:
    """The /metrics at `url`, which must answer 200 in the Prometheus text format."""
    status, headers, body = await asyncio.to_thread(http_request, url, "GET", token)
    assert status == 200, (status, body)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return MetricsScrape(body.decode())


async def logged(
    servers: ServerProcess | Sequence[ServerProcess],
    name: str,
    /,
    count: int = 1,
    within: float = 10.0,
    **fields: Any,
) -> list[LogEvent]:
    """The events called `name` with these field values that the server (or any of several) logged.

    Waits, without blocking the event loop, until there are `count`; see server_process.wait_logged.
    """
    servers = (servers,) if isinstance(servers, ServerProcess) else servers
    return await asyncio.to_thread(wait_logged, servers, name, count, within, **fields)


async def close_code(connection: ClientConnection, within: float = 10.0) -> int:
    """Read and drop frames until the connection closes; the code of the close frame the server sent."""
    async with asyncio.timeout(scaled(within)):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed as closed:
            close = closed.rcvd
    assert close is not None, "closed without a close frame from the server"
    return close.code


# The misbehaving peer that keepalive, shutdown and slow-consumer tests need: a websockets client
# would answer pings and close frames and drain its socket by itself, hiding what the server does.
# Its receive buffer is small, so that what it does not read piles up in the server rather than
# in this machine's kernel.
RAW_RECEIVE_BUFFER = 4096


class RawClient:
    """A WebSocket client on raw TCP that does the handshake, then never writes and reads only when asked."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self._sock = sock
        # websockets' sans-I/O protocol only parses here: what it queues after the handshake (pongs,
        # the close reply) is never sent, which is the whole point of this client.
        self._protocol = protocol
        # Events parsed from data already read but not handed out yet.
        self._events: deque[Event] = deque()
        self._eof = False

    @classmethod
    async def connect(
        cls, server: ServerProcess, uid: str, *topics: str, headers: dict[str, str] | None = None
    ) -> RawClient:
        """Connect as `uid` on `topics`, with these extra request headers; read up to the `success` frame."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connecting, so that the advertised window stays small and is not auto-tuned.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RAW_RECEIVE_BUFFER)
        sock.setblocking(False)
        # No size limit: a frame too large would make the protocol fail the connection on its own,
        # and this client only reports what the server sent.
        client = cls(sock, ClientProtocol(parse_uri(server.url(subscribe_path(uid, *topics))), max_size=None))
        try:
            async with asyncio.timeout(scaled(10)):
                loop = asyncio.get_running_loop()
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
                request = client._protocol.connect()
                request.headers.update(headers or {})
                client._protocol.send_request(request)
                # The handshake request is the only data this client sends unless told (send_text).
                await loop.sock_sendall(sock, b"".join(client._protocol.data_to_send()))
                response = await client.next_event()
                success = await client.next_event()
            assert isinstance(response, Response), response
            assert response.status_code == 101, response
            assert client._protocol.state is State.OPEN, client._protocol.handshake_exc
            assert isinstance(success, Frame), success
            assert json.loads(bytes(success.data))["type"] == "success", success
        except BaseException:
            sock.close()
            raise
        return client

    async def next_event(self) -> Event:
        """The next event, reading only as much as it takes; EOFError once the server has hung up."""
        loop = asyncio.get_running_loop()
        while not self._events:
            if self._eof:
                raise EOFError("the server ended the TCP connection")
            data = await loop.sock_recv(self._sock, 65536)
            if data:
                self._protocol.receive_data(data)
            else:
                self._eof = True
                self._protocol.receive_eof()
            self._events.extend(self._protocol.events_received())
        return self._events.popleft()

    async def frames(self) -> AsyncIterator[Frame]:
        """Every frame not read yet, until the server ends the TCP connection.

        The state lives in the client, so a loop that breaks out early can call this again to go on.
        """
        while True:
            try:
                event = await self.next_event()
            except EOFError:
                return
            assert isinstance(event, Frame), event
            yield event

    async def send_text(self, text: str) -> None:
        """Send a text frame, whatever the state: even after a close frame, which it never answers."""
        frame = Frame(Opcode.TEXT, text.encode())
        await asyncio.get_running_loop().sock_sendall(self._sock, frame.serialize(mask=True, extensions=[]))

    def close(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self._sock.close()
