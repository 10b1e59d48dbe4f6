"""Connections that subscribe and never read, each opened again whenever the server drops it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

# Small, and set before connecting so the window stays small: what is not read piles up in the
# server rather than in this machine's kernel.
RECEIVE_BUFFER = 4096
TCP_ESTABLISHED = 1
POLL_INTERVAL = 0.1
HANDSHAKE_TIMEOUT = 10.0


class NeverReading:
    """`count` connections to `topic` at `url` that read nothing after their handshake.

    A server that bounds what it holds for a client drops such a connection sooner or later;
    it is noticed from the socket's TCP state (a reset), without reading, and opened again, so
    that `count` stand for the whole run. `drops` counts the connections the server dropped.
    """

    def __init__(self, url: str, topic: str, count: int) -> None:
        self._url = url
        self._topic = topic
        self._count = count
        self.drops = 0
        self.failures = 0
        # Set once every connection has opened once.
        self.opened = asyncio.Event()
        self._open = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connections standing until `stop` is set."""
        if self._count == 0:
            self.opened.set()
        await asyncio.gather(*(self._keep(number, stop) for number in range(self._count)))

    async def _keep(self, number: int, stop: asyncio.Event) -> None:
        first = True
        while not stop.is_set():
            try:
                sock = await self._connect(f"never-reading-{number}")
            except (OSError, TimeoutError, ValueError):
                # The server may refuse for a moment (a full backlog); try again after a pause.
                self.failures += 1
                await _wait(stop, POLL_INTERVAL)
                continue
            if first:
                first = False
                self._open += 1
                if self._open == self._count:
                    self.opened.set()
            try:
                while not stop.is_set():
                    if _tcp_state(sock) != TCP_ESTABLISHED:
                        self.drops += 1
                        break
                    await _wait(stop, POLL_INTERVAL)
            finally:
                sock.close()

    async def _connect(self, uid: str) -> socket.socket:
        """A connection whose handshake is done, and nothing of it read beyond the response."""
        url = f"{self._url}/subscribe/id:{uid}/topic:{self._topic}"
        protocol = ClientProtocol(parse_uri(url), max_size=None)
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await loop.sock_connect(sock, (parts.hostname, parts.port))
                protocol.send_request(protocol.connect())
                await loop.sock_sendall(sock, b"".join(protocol.data_to_send()))
                while True:
                    data = await loop.sock_recv(sock, RECEIVE_BUFFER)
                    if not data:
                        raise ConnectionResetError("closed during the handshake")
                    protocol.receive_data(data)
                    responses = [e for e in protocol.events_received() if isinstance(e, Response)]
                    if responses:
                        break
            if responses[0].status_code != 101:
                raise ValueError(f"handshake answered {responses[0].status_code}")
        except BaseException:
            sock.close()
            raise
        return sock


def _tcp_state(sock: socket.socket) -> int:
    """The socket's TCP state (Linux TCP_INFO's first byte); 1 while established."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return 0


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
