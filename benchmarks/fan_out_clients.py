"""The side-by-side benchmark's clients: subscriber worker processes that speak minimess's or
Centrifugo's protocol and count deliveries, and a publisher through Centrifugo's HTTP API.

The subscribers do the same for both servers — one websockets client connection each, no
compression, every frame read at once — and look at a frame only as far as counting its messages
needs: Centrifugo writes several pushes into one frame under load (newline-delimited JSON), so
messages are counted, not frames.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from minimess.bench.publisher import PublishPlan, PublishReport

PROTOCOLS = ("minimess", "centrifugo")
# Indices into a worker's shared counters, read by the parent while the round runs.
CONNECTED, RECEIVED, FRAMES = 0, 1, 2
COUNTERS = 3
CONNECT_TIMEOUT = 60.0
# What marks one message in a frame: minimess sends one `message` frame per message; Centrifugo's
# publication push carries a `pub` object, one per line of a frame.
MINIMESS_MESSAGE = '"type":"message"'
CENTRIFUGO_PUBLICATION = '"pub":{'
# Centrifugo's application-level ping is an empty command; a client answers it with one.
CENTRIFUGO_PING = "{}"


class RefusedError(Exception):
    """Centrifugo answered the connect or subscribe command with an error."""


@attrs.frozen
class SubscriberPlan:
    """One worker's subscribers: numbers `numbers` on `channel` of the server at `url` (ws://host:port)."""

    protocol: str
    url: str
    channel: str
    numbers: tuple[int, ...]
    connect_concurrency: int
    # Centrifugo's connection token (HS256, made with the secret in its config); None for minimess.
    token: str | None = None


@attrs.frozen
class Delivered:
    """What one worker counted after connecting; `last_received` is wall-clock seconds."""

    received: int
    frames: int
    last_received: float
    close_codes: dict[int, int]


def run_subscribers(plan: SubscriberPlan, control: Connection, counters: Any) -> None:
    """Process entry point: connect, send ("connected", (ok, failed, first failure)), count deliveries
    until the parent sends "finish", then send ("delivered", Delivered)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # a thousand clients need more sockets than the usual soft limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_Subscribers(plan, control, counters).run())


class _Subscribers:
    def __init__(self, plan: SubscriberPlan, control: Connection, counters: Any) -> None:
        self._plan = plan
        self._control = control
        self._counters = counters
        self._received = 0
        self._frames = 0
        self._last_received = 0.0
        self._close_codes: Counter[int] = Counter()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self._plan.connect_concurrency)
        opened = await asyncio.gather(*(self._open(number, slots) for number in self._plan.numbers))
        connections = [c for c in opened if not isinstance(c, str)]
        failures = [c for c in opened if isinstance(c, str)]
        self._control.send(
            ("connected", (len(connections), len(failures), failures[0] if failures else None))
        )
        readers = [asyncio.create_task(self._count(connection)) for connection in connections]
        await asyncio.to_thread(self._control.recv)  # the parent's "finish"
        delivered = Delivered(self._received, self._frames, self._last_received, dict(self._close_codes))
        self._control.send(("delivered", delivered))
        for reader in readers:
            reader.cancel()
        for connection in connections:
            connection.transport.abort()

    async def _open(self, number: int, slots: asyncio.Semaphore) -> ClientConnection | str:
        plan = self._plan
        centrifugo = plan.protocol == "centrifugo"
        path = "/connection/websocket" if centrifugo else f"/subscribe/id:b{number}/topic:{plan.channel}"
        async with slots:
            try:
                # max_queue=None: read every frame off the socket at once, so that a busy worker
                # never shows up as a slow consumer on the server.
                connection = await connect(
                    plan.url + path,
                    compression=None,
                    max_queue=None,
                    ping_interval=None,
                    open_timeout=CONNECT_TIMEOUT,
                )
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    if centrifugo:
                        await _centrifugo_subscribe(connection, plan.token or "", plan.channel)
                    else:
                        await connection.recv()  # `success`
            except (OSError, TimeoutError, WebSocketException, RefusedError) as error:
                return f"{plan.url}: {error!r}"
            self._counters[CONNECTED] += 1
            return connection

    async def _count(self, connection: ClientConnection) -> None:
        centrifugo = self._plan.protocol == "centrifugo"
        counters = self._counters
        try:
            async for data in connection:
                text = data if isinstance(data, str) else data.decode()
                if centrifugo:
                    messages = text.count(CENTRIFUGO_PUBLICATION)
                    if CENTRIFUGO_PING in text.split("\n"):
                        await connection.send(CENTRIFUGO_PING)
                else:
                    messages = 1 if MINIMESS_MESSAGE in text else 0
                if not messages:
                    continue
                self._received += messages
                self._frames += 1
                counters[RECEIVED] = self._received
                counters[FRAMES] = self._frames
                self._last_received = time.time()
        except ConnectionClosed:
            pass
        self._close_codes[connection.close_code or 1006] += 1


async def _centrifugo_subscribe(connection: ClientConnection, token: str, channel: str) -> None:
    """Connect and subscribe in one frame (two commands, newline-delimited) and wait for both replies."""
    commands = [{"id": 1, "connect": {"token": token}}, {"id": 2, "subscribe": {"channel": channel}}]
    await connection.send("\n".join(json.dumps(command) for command in commands))
    answered: set[int] = set()
    while answered != {1, 2}:
        data = await connection.recv()
        for line in (data if isinstance(data, str) else data.decode()).split("\n"):
            reply = json.loads(line) if line else {}
            if "error" in reply:
                raise RefusedError(line)
            if isinstance(reply.get("id"), int):
                answered.add(reply["id"])


async def publish_http(host: str, port: int, api_key: str, channel: str, plan: PublishPlan) -> PublishReport:
    """Publish the plan through Centrifugo's HTTP API on one keep-alive connection, `plan.window`
    requests in flight (HTTP/1.1 pipelining: Go's server answers them in order), and wait for every
    answer. The body of each message is what minimess's bench publisher sends: the send time in
    microseconds, then padding to `plan.body_bytes`."""
    report = PublishReport()
    numbers = plan.numbers
    reader, writer = await asyncio.open_connection(host, port)
    slots = asyncio.Semaphore(plan.window)
    answers = asyncio.create_task(_read_http_answers(reader, len(numbers), slots, report))
    head = f"POST /api/publish HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {api_key}\r\n"
    head += "Content-Type: application/json\r\n"
    padding = plan.padding
    try:
        async for _ in plan.paced(slots, report):
            body = json.dumps(
                {"channel": channel, "data": f"{time.time_ns() // 1000} {padding}"}, separators=(",", ":")
            ).encode()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        try:
            async with asyncio.timeout(plan.answer_timeout):
                await asyncio.shield(answers)
        except TimeoutError:
            pass
    finally:
        answers.cancel()
        writer.close()
    report.unanswered = len(numbers) - report.acked - report.errors.total()
    return report


async def _read_http_answers(
    reader: asyncio.StreamReader, expected: int, slots: asyncio.Semaphore, report: PublishReport
) -> None:
    for _ in range(expected):
        status = await reader.readline()
        if not status:
            return  # the server closed the connection: the rest stay unanswered
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        code = status.split()[1].decode()
        if code == "200" and b'"error"' not in body:
            report.acked += 1
        else:
            report.errors[f"http {code}: {body[:80].decode(errors='replace')}"] += 1
        report.finished = time.time()
        slots.release()
