"""One worker process of `minimess serve --workers N`: who it is, the settings it follows, when it stops."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from minimess.bootstrap.runtime import freeze_start_up, loop_factory
from minimess.bootstrap.settings import ServeSettings

if TYPE_CHECKING:
    from minimess.adapters.websocket_server.server import WebSocketServer

# What the supervisor tells each worker it starts, in its environment; not options: an operator
# never sets them.
INDEX_VARIABLE = "MINIMESS_WORKER_INDEX"
PORT_VARIABLE = "MINIMESS_WORKER_PORT"
CHANNEL_VARIABLE = "MINIMESS_WORKER_CHANNEL"
SUPERVISOR_VARIABLE = "MINIMESS_WORKER_SUPERVISOR"
# prctl(2)'s option for the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1

# A worker's exit status when it stopped because the local channel was lost (the supervisor
# restarts it, as it would after any exit it did not ask for).
EXIT_CHANNEL_LOST = 75


@attrs.frozen
class WorkerRole:
    """What makes this process a worker: its index among the supervisor's, the port, the channel."""

    index: int
    port: int
    # The local channel's socket (workers on the memory bus), else None.
    channel: Path | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WorkerRole | None:
        """The role the supervisor gave this process; None for a process an operator started."""
        if INDEX_VARIABLE not in environ:
            return None
        channel = environ.get(CHANNEL_VARIABLE)
        return cls(
            int(environ[INDEX_VARIABLE]), int(environ[PORT_VARIABLE]), Path(channel) if channel else None
        )

    def environment(self) -> dict[str, str]:
        """The variables that give a process this role."""
        variables = {
            INDEX_VARIABLE: str(self.index),
            PORT_VARIABLE: str(self.port),
            SUPERVISOR_VARIABLE: str(os.getpid()),
        }
        if self.channel is not None:
            variables[CHANNEL_VARIABLE] = str(self.channel)
        return variables

    def settings(self, settings: ServeSettings) -> ServeSettings:
        """`settings` as this worker applies them: the supervisor's port, its own name and admin port.

        The name is `<node>-<index>` (the node's --node-id, else host:port), a bus member of its
        own on Kafka; the admin port is --admin-port plus the index (0 stays any free port).
        """
        server = attrs.evolve(settings.server, port=self.port)
        admin_port = server.admin_port
        if admin_port:
            admin_port += self.index
        server = attrs.evolve(server, node_id=f"{server.node_name}-{self.index}", admin_port=admin_port)
        return attrs.evolve(settings, server=server)


def follow_supervisor() -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies (Linux), so that a worker
    never outlives it; it then drains its clients as on any SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor may have died before the call: this process then belongs to another parent.
    if os.getppid() != int(os.environ.get(SUPERVISOR_VARIABLE, os.getppid())):
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(server: WebSocketServer, lost: asyncio.Event | None, loop: str = "auto") -> int:
    """Run a worker's server (see serve_as_worker) on the event loop `loop` names; its exit status."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        status = runner.run(serve_as_worker(server, lost))
    # Drained already: the supervisor's SIGTERM, sent to every worker at once, may still be on its
    # way, and must not turn this exit into a death by signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return status


async def serve_as_worker(server: WebSocketServer, lost: asyncio.Event | None) -> int:
    """Serve until SIGINT or SIGTERM, or until the channel is `lost`, draining clients either way.

    Returns the exit status: EXIT_CHANNEL_LOST when the channel was lost, else 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Without the channel this worker cannot deliver what others publish: it stops, and is restarted.
    watch = None if lost is None else asyncio.create_task(_set_when(lost, stop))
    # As a single server's: start-up out of the collector's way (bootstrap/runtime.py).
    freezing = asyncio.create_task(freeze_start_up(server.listening))
    try:
        await server.run(stop)
    finally:
        freezing.cancel()
        if watch is not None:
            watch.cancel()
    return EXIT_CHANNEL_LOST if lost is not None and lost.is_set() else 0


async def _set_when(event: asyncio.Event, stop: asyncio.Event) -> None:
    await event.wait()
    stop.set()


def checked_admin_port(settings: ServeSettings, workers: int) -> str | None:
    """Why --admin-port cannot serve `workers` workers (admin port plus index past 65535), or None."""
    admin_port = settings.server.admin_port
    if admin_port and admin_port + workers - 1 > 65535:
        return f"--admin-port {admin_port} plus the worker index passes 65535 with {workers} workers"
    return None


def checked_message_size(settings: ServeSettings, workers: int) -> str | None:
    """Why --max-message-bytes is too large for the local channel of `workers` workers, or None.

    A message crosses the channel as one frame, its body escaped as the client's frame had it;
    one over the channel's frame limit would break the channel, and every worker with it.
    """
    from minimess.adapters.local_channel.frames import MAX_FRAME

    limit = MAX_FRAME - CHANNEL_FRAME_OVERHEAD
    largest = settings.server.max_message_bytes
    if workers > 1 and settings.broker == "memory" and largest > limit:
        return f"--max-message-bytes {largest} is more than the workers' local channel carries ({limit})"
    return None


# What a message's frame on the local channel holds besides its body, with room to spare: the
# other fields of the message, its headers (--trace stamps) and the frame's own.
CHANNEL_FRAME_OVERHEAD = 64 * 1024
