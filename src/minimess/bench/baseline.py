"""The yardsticks: bare websockets servers that speak the frames minimess speaks, in two designs.

    python -m minimess.bench.baseline PORT [broadcast|queued]

`broadcast` (the default, what ratios are against) hands each message to `websockets.broadcast`,
which frames it for every connection and writes it at once. `queued` is the literal translation
of a goroutine-and-channel design: every subscriber gets its own encoding of the message on its
own queue, and a writer task per connection wakes up and awaits `send` for each one.

Both do the least a protocol v1 server must do for the benchmark's clients — subscribe through
the URL, answer `pub` with a `message` to every subscriber of the topic and an `ack` — and
nothing else: no validation, no broker, and (for broadcast) no bound on what waits for a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

DESIGNS = ("broadcast", "queued")
# queued: frames one connection may have waiting; a full queue drops the frame (no slow-consumer
# policy: the yardstick only has to be as simple as possible, and the bench counts deliveries).
QUEUE_SIZE = 1024

# Topic -> the connections subscribed to it, and (queued) each connection's frames to write.
subscribers: dict[str, set[ServerConnection]] = {}
queues: dict[ServerConnection, asyncio.Queue[str]] = {}


def topics_of(path: str) -> list[str]:
    return [segment.removeprefix("topic:") for segment in path.split("/") if segment.startswith("topic:")]


@contextlib.asynccontextmanager
async def subscribed(connection: ServerConnection) -> AsyncIterator[None]:
    """The connection subscribed to the topics of its URL and greeted, for as long as it stays."""
    assert connection.request is not None  # set by the handshake
    topics = topics_of(connection.request.path)
    for topic in topics:
        subscribers.setdefault(topic, set()).add(connection)
    try:
        await connection.send(success_frame(topics))
        yield
    finally:
        for topic in topics:
            subscribers[topic].discard(connection)


def success_frame(topics: list[str]) -> str:
    """The greeting: the least of minimess's `success` a client reads."""
    return json.dumps({"type": "success", "uid": "x", "node": "baseline", "topics": topics})


def message_for(pub: dict[str, Any]) -> dict[str, Any]:
    """The `message` a `pub` makes, with an id of its own and the time."""
    return {
        "type": "message",
        "id": uuid.uuid4().hex,
        "topic": pub["topic"],
        "from": "publisher",
        "body": pub["body"],
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def fan_out_broadcast(topic: str, message: dict[str, Any]) -> None:
    broadcast(subscribers.get(topic, ()), json.dumps(message))


def fan_out_queued(topic: str, message: dict[str, Any]) -> None:
    for connection in subscribers.get(topic, ()):
        with contextlib.suppress(asyncio.QueueFull):
            queues[connection].put_nowait(json.dumps(message))


async def write_queued(connection: ServerConnection, frames: asyncio.Queue[str]) -> None:
    while True:
        await connection.send(await frames.get())


def handler(fan_out: Callable[[str, dict[str, Any]], None], queued: bool) -> Any:
    async def handle(connection: ServerConnection) -> None:
        writer = None
        if queued:
            queues[connection] = asyncio.Queue(QUEUE_SIZE)
            writer = asyncio.create_task(write_queued(connection, queues[connection]))
        try:
            async with subscribed(connection):
                async for data in connection:
                    frame = json.loads(data)
                    message = message_for(frame)
                    fan_out(frame["topic"], message)
                    await connection.send(
                        json.dumps({"type": "ack", "ref": frame.get("ref"), "id": message["id"]})
                    )
        finally:
            if writer is not None:
                writer.cancel()
                del queues[connection]

    return handle


async def main(port: int, design: str) -> None:
    queued = design == "queued"
    handle = handler(fan_out_queued if queued else fan_out_broadcast, queued)
    async with serve(handle, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    design = sys.argv[2] if len(sys.argv) > 2 else "broadcast"
    if design not in DESIGNS:
        sys.exit(f"usage: python -m minimess.bench.baseline PORT [{'|'.join(DESIGNS)}]")
    asyncio.run(main(int(sys.argv[1]), design))
