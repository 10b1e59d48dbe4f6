"""Subscriber worker processes: each opens its share of connections and times every delivery."""

from __future__ import annotations

import asyncio
import resource
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from minimess.bench import frames

# The stamps a traced `message` frame carries (minimess serve --trace), in the order taken.
STAMPS = ("sent", "received", "delivered", "queued", "written")
# The intervals between them, ending with the subscriber's own receive time.
STAGES = tuple(f"{a}->{b}" for a, b in zip(STAMPS, (*STAMPS[1:], "client"), strict=True))

# Indices into a worker's shared progress array, read by the parent for its progress display.
CONNECTED, RECEIVED = 0, 1

CONNECT_TIMEOUT = 60.0


@attrs.frozen
class WorkerPlan:
    """What one worker does: which URLs to connect to and how many deliveries to expect."""

    urls: tuple[str, ...]
    connect_concurrency: int
    trace: bool
    # Offer the minimess.batch subprotocol (frames.documents reads either way).
    batch: bool = False


@attrs.define
class ConnectReport:
    """How the worker's connections opened (wall-clock times, seconds since the epoch)."""

    connected: int
    failed: int
    first_failure: str | None
    started: float
    finished: float


@attrs.define
class DeliveryReport:
    """Everything the worker saw after connecting; latencies in microseconds."""

    received: int
    last_received: float
    latencies_us: array[int]
    stages_us: dict[str, array[int]]
    close_codes: dict[int, int]
    # The worker's CPU time (every thread) from its connections' opening to the end of the round.
    cpu_seconds: float
    # Frames that held at least one `message` (more than one with --batch, when batched).
    message_frames: int


def run_worker(plan: WorkerPlan, control: Connection, progress: Any) -> None:
    """Process entry point: connect, report, time deliveries until told to finish, report again.

    `control` carries ("connected", ConnectReport) and ("delivered", DeliveryReport) to the
    parent, and the parent's "finish" back; `progress` is a shared array of two counters.
    """
    _raise_file_limit()
    asyncio.run(_Worker(plan, control, progress).run())


class _Worker:
    def __init__(self, plan: WorkerPlan, control: Connection, progress: Any) -> None:
        self._plan = plan
        self._control = control
        self._progress = progress
        self._latencies: array[int] = array("q")
        self._stages: dict[str, array[int]] = {stage: array("q") for stage in STAGES}
        self._close_codes: Counter[int] = Counter()
        self._received = 0
        self._message_frames = 0
        self._last_received = 0.0

    async def run(self) -> None:
        started = time.time()
        slots = asyncio.Semaphore(self._plan.connect_concurrency)
        opened = await asyncio.gather(*(self._open(url, slots) for url in self._plan.urls))
        connections = [c for c in opened if not isinstance(c, str)]
        failures = [c for c in opened if isinstance(c, str)]
        self._control.send(
            (
                "connected",
                ConnectReport(
                    len(connections), len(failures), failures[0] if failures else None, started, time.time()
                ),
            )
        )
        cpu_start = time.process_time()
        readers = [asyncio.create_task(self._consume(connection)) for connection in connections]
        # The parent decides when the round is over (every delivery seen, or its drain timeout).
        await asyncio.to_thread(self._control.recv)
        cpu_seconds = time.process_time() - cpu_start
        self._control.send(
            (
                "delivered",
                DeliveryReport(
                    self._received,
                    self._last_received,
                    self._latencies,
                    self._stages if self._plan.trace else {},
                    dict(self._close_codes),
                    cpu_seconds,
                    self._message_frames,
                ),
            )
        )
        for reader in readers:
            reader.cancel()
        for connection in connections:
            connection.transport.abort()

    async def _open(self, url: str, slots: asyncio.Semaphore) -> ClientConnection | str:
        async with slots:
            try:
                # max_queue=None: read every frame off the socket at once, so that a busy worker
                # shows up as latency here and never as a slow consumer on the server.
                connection = await connect(
                    url,
                    compression=None,
                    max_queue=None,
                    ping_interval=None,
                    open_timeout=CONNECT_TIMEOUT,
                    subprotocols=frames.offered(self._plan.batch),
                )
                await connection.recv()  # `success`
            except (OSError, TimeoutError, WebSocketException) as error:
                return f"{url}: {error!r}"
            self._progress[CONNECTED] += 1
            return connection

    async def _consume(self, connection: ClientConnection) -> None:
        latencies, stages, trace = self._latencies, self._stages, self._plan.trace
        progress = self._progress
        try:
            async for data in connection:
                received = self._received
                for document in frames.documents(data):
                    if document.get("type") != "message":
                        continue
                    now_us = time.time_ns() // 1000
                    # The publisher puts its send time, in microseconds, first in every body.
                    latencies.append(now_us - int(document["body"].partition(" ")[0]))
                    if trace:
                        _add_stages(stages, document.get("trace"), now_us)
                    self._received += 1
                    progress[RECEIVED] = self._received
                    self._last_received = now_us / 1e6
                if self._received > received:
                    self._message_frames += 1
        except ConnectionClosed:
            pass
        self._close_codes[connection.close_code or 1006] += 1


def _add_stages(stages: dict[str, array[int]], trace: Any, now_us: int) -> None:
    if not isinstance(trace, dict):
        return
    times = [stamp for name in STAMPS if isinstance(stamp := trace.get(name), int)]
    if len(times) < len(STAMPS):
        return  # a message published without a sent or received stamp
    times.append(now_us)
    for stage, start, end in zip(STAGES, times[:-1], times[1:], strict=True):
        stages[stage].append(end - start)


def _raise_file_limit() -> None:
    """Allow as many open sockets as the hard limit does: thousands of clients need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
