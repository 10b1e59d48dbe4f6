"""What a full garbage collection costs a server holding idle connections, with start-up frozen and without.

usage: uv run python -m benchmarks.gc_pause [--connections 1000] [--rounds 3]

Each round runs, in turn, a server with start-up frozen (as `minimess serve` does once it
listens) and one without, in this process on uvloop, with `--connections` WebSocket connections
held open by a client process; then it times seven full collections (`gc.collect()`, CPU time of
this process) and keeps their median. Reported: the median over the rounds, the objects the
collector tracks and those frozen.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import time

import uvloop

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.bootstrap.runtime import freeze_start_up
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.entrypoints.log_setup import configure_logging

# The client process: opens the connections, 100 at a time, says so, and holds them until killed.
CLIENT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main(port, count):
    held = []
    for start in range(0, count, 100):
        held += await asyncio.gather(*(
            connect(f"ws://127.0.0.1:{port}/subscribe/id:u{n}/topic:t{n % 10}", ping_interval=None)
            for n in range(start, min(start + 100, count))
        ))
    print("connected", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def collection_ms() -> float:
    """The median CPU time of seven full collections, in milliseconds."""
    times = []
    for _ in range(7):
        start = time.process_time()
        gc.collect()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


async def one_server(connections: int, freeze: bool) -> tuple[float, int, int]:
    gc.unfreeze()
    settings = ServeSettings(server=WebSocketSettings(port=0, rate_limit=0, max_handshakes_per_ip=0))
    server = build_container(settings).server()
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    if freeze:
        await freeze_start_up(server.listening)
    await server.listening.wait()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(server.port), str(connections), stdout=subprocess.PIPE
    )
    try:
        assert client.stdout is not None
        if (await client.stdout.readline()).strip() != b"connected":
            raise RuntimeError("the client process could not connect")
        result = collection_ms(), len(gc.get_objects()), gc.get_freeze_count()
    finally:
        if client.returncode is None:
            client.kill()
        await client.wait()
    stop.set()
    await serving
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning", "json")
    results: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
    for number in range(1, args.rounds + 1):
        for freeze in (False, True):  # alternate, so that drift hits both alike
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(one_server(args.connections, freeze))
            print(f"round {number}, frozen={freeze}: {result[0]:.1f} ms", file=sys.stderr, flush=True)
            results[freeze].append(result)
    print(f"{args.connections} idle connections, median of {args.rounds} rounds")
    for freeze in (False, True):
        rounds = results[freeze]
        print(
            f"{'start-up frozen' if freeze else 'nothing frozen':<16}"
            f" full collection {statistics.median(r[0] for r in rounds):7.1f} ms CPU,"
            f" {statistics.median(r[1] for r in rounds):9,.0f} objects tracked,"
            f" {statistics.median(r[2] for r in rounds):7,.0f} frozen"
        )


if __name__ == "__main__":
    main()
