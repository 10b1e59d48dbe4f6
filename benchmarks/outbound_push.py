"""CPU per push of the outbound path under a flood, in-process: 1,000 connections, 50 frames each a turn.

usage: uv run python -m benchmarks.outbound_push [--rounds 7]

No sockets: each connection's transport only counts what it is given, so the figure is the cost of
Outbound.push and of the flush at the end of each turn, which is what the server spends per
delivery beyond the system calls. The first frame of a turn goes straight to the transport, the
other 49 are collected and written together. Runs on trees from before --queue-bytes too.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from typing import Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from minimess.adapters.websocket_server.outbound import Flusher, Outbound

CONNECTIONS = 1000
FRAMES_PER_TURN = 50
TURNS = 20


class _Transport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0


class _Protocol:
    state = State.OPEN


class _Connection:
    def __init__(self) -> None:
        self.protocol = _Protocol()
        self.paused = False
        self.transport = _Transport()


async def _round() -> float:
    """Nanoseconds of CPU per push, over TURNS turns."""
    flusher = Flusher()
    # The byte bound as large as the frame bound: neither is reached.
    bounds: dict[str, Any] = {}
    if "queue_bytes" in inspect.signature(Outbound).parameters:
        bounds["queue_bytes"] = 2**40
    outbounds = [
        Outbound(cast(ServerConnection, _Connection()), 10**9, lambda: None, flusher, **bounds)
        for _ in range(CONNECTIONS)
    ]
    frame = b"x" * 200
    started = time.process_time()
    for _ in range(TURNS):
        for _ in range(FRAMES_PER_TURN):
            for outbound in outbounds:
                outbound.push(frame)
        await asyncio.sleep(0)  # the turn ends: the flusher writes what was collected
    return (time.process_time() - started) / (TURNS * FRAMES_PER_TURN * CONNECTIONS) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    figures = [asyncio.run(_round()) for _ in range(rounds)]
    print(f"ns of CPU per push: median {statistics.median(figures):.0f}, min {min(figures):.0f}")


if __name__ == "__main__":
    main()
