"""The supervisor of `minimess serve --workers N`: starts workers on one port, restarts them, drains them.

It holds no client connection. On the memory bus it also runs the local channel's sequencer,
through which the workers exchange messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import structlog

from minimess.adapters.local_channel.sequencer import Sequencer
from minimess.adapters.websocket_server import start_line
from minimess.bootstrap.settings import ServeSettings
from minimess.bootstrap.worker import WorkerRole

log = structlog.get_logger(__name__)

# Restarts allowed within RESTART_WINDOW seconds; one more means the workers are in a crash loop:
# the supervisor then stops every worker and exits 1, for the operator's process manager to see.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# Seconds a worker may take to exit after the SIGTERM that drains it, beyond --shutdown-timeout
# (interpreter teardown); past it, it is killed.
EXIT_MARGIN = 10.0
# A worker's output line longer than this is cut into pieces of this size.
RELAYED_LINE_BYTES = 2**20


class Supervisor:
    """Runs `count` workers, each `minimess serve` with the same arguments and a WorkerRole."""

    def __init__(self, settings: ServeSettings, arguments: Sequence[str], count: int) -> None:
        self._settings = settings
        self._arguments = list(arguments)
        self._count = count
        self._workers: dict[int, asyncio.subprocess.Process] = {}
        self._restarts: deque[float] = deque()
        # The tasks copying the workers' output to the supervisor's, until each stream ends.
        self._relays: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Serve until SIGINT or SIGTERM (0 once every worker drained) or a crash loop (1)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        with _port_held(self._settings.server.host, self._settings.server.port) as port:
            async with self._channel() as channel:
                roles = [WorkerRole(index, port, channel) for index in range(self._count)]
                start_line.start_log.info(
                    "supervisor_started",
                    workers=self._count,
                    host=self._settings.server.host,
                    port=port,
                    broker=self._settings.broker,
                    channel=None if channel is None else str(channel),
                    pid=os.getpid(),
                )
                for role in roles:
                    await self._start(role)
                status = await self._supervise(roles, stop)
        log.info("supervisor_stopped", status=status)
        return status

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[Path | None]:
        """The local channel's socket on the memory bus (its sequencer serving), else None."""
        if self._settings.broker != "memory":
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="minimess-channel-") as directory:
            sequencer = Sequencer(Path(directory) / "channel.sock")
            async with sequencer.serving():
                yield sequencer.path

    async def _start(self, role: WorkerRole) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "minimess",
            *self._arguments,
            env={**os.environ, **role.environment()},
            stdin=asyncio.subprocess.DEVNULL,
            # Relayed a line at a time: written to the same stream by several processes, a line
            # could otherwise be cut by another's (a log line is not one write).
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=RELAYED_LINE_BYTES,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        for stream, fd in ((process.stdout, sys.stdout.fileno()), (process.stderr, sys.stderr.fileno())):
            relay = asyncio.create_task(_relay(stream, fd))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)
        self._workers[role.index] = process
        log.info("worker_started", worker=role.index, pid=process.pid)

    async def _supervise(self, roles: list[WorkerRole], stop: asyncio.Event) -> int:
        stopped = asyncio.create_task(stop.wait())
        waits = {asyncio.create_task(process.wait()): index for index, process in self._workers.items()}
        status = 0
        while True:
            done, _ = await asyncio.wait({stopped, *waits}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                break
            for wait in done:
                index = waits.pop(wait)
                log.warning("worker_exited", worker=index, status=wait.result())
                if self._crash_loop():
                    log.error(
                        "workers_crash_loop", restarts=len(self._restarts), window_seconds=RESTART_WINDOW
                    )
                    status = 1
                    break
                await self._start(roles[index])
                waits[asyncio.create_task(self._workers[index].wait())] = index
            if status:
                break
        stopped.cancel()
        await self._drain(waits)
        return status

    def _crash_loop(self) -> bool:
        """Count a restart; whether there were more than MAX_RESTARTS within the window."""
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW:
            self._restarts.popleft()
        return len(self._restarts) > MAX_RESTARTS

    async def _drain(self, waits: dict[asyncio.Task[int], int]) -> None:
        """SIGTERM every worker at once (each drains its clients), and wait until all have exited."""
        log.info("workers_stopping", workers=len(waits))
        for index in waits.values():
            with contextlib.suppress(ProcessLookupError):
                self._workers[index].send_signal(signal.SIGTERM)
        if not waits:
            return
        _, late = await asyncio.wait(waits, timeout=self._settings.server.shutdown_timeout + EXIT_MARGIN)
        for wait in late:
            index = waits[wait]
            log.error("worker_killed", worker=index, reason="did not exit after draining")
            with contextlib.suppress(ProcessLookupError):
                self._workers[index].kill()
        if late:
            await asyncio.wait(late)
        for wait, index in waits.items():
            log.info("worker_stopped", worker=index, status=wait.result())
        # Every worker has exited: its streams end once what it wrote has been read.
        await asyncio.gather(*self._relays)


async def _relay(stream: asyncio.StreamReader, fd: int) -> None:
    """Copy a worker's output to `fd` a whole line per write, until it ends.

    Each write runs in a thread: when whoever reads `fd` falls behind, only this relay waits,
    not the event loop, which also runs the local channel between the workers.
    """
    while True:
        try:
            line = await stream.readline()
        except ValueError:
            # Longer than the limit: what is buffered goes as it is.
            line = await stream.read(RELAYED_LINE_BYTES)
        if not line:
            return
        await asyncio.to_thread(_write_all, fd, line)


# One line at a time from every relay: a line over PIPE_BUF may take several writes, which another
# relay's (the other workers', or stderr's into the same file) must not come between.
_WRITING = threading.Lock()


def _write_all(fd: int, data: bytes) -> None:
    with _WRITING:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


@contextlib.contextmanager
def _port_held(host: str, port: int) -> Iterator[int]:
    """`port`, or with 0 a free port, held while the workers run (see reserve_port)."""
    if port != 0:
        yield port
        return
    with reserve_port(host) as reserved:
        yield reserved.getsockname()[1]


def serve_workers(settings: ServeSettings, arguments: Sequence[str]) -> int:
    """Run the supervisor of `settings.worker_count` workers; its exit status."""
    return asyncio.run(Supervisor(settings, arguments, settings.worker_count).run())


def reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port of `host` with SO_REUSEPORT, not listening: it keeps the port
    for the workers (which bind it too), and takes no connection."""
    family, kind, _, _, address = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM)[0]
    reserved = socket.socket(family, kind)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(address)
    return reserved
