"""The yardstick: a bare `websockets.broadcast` server that speaks the frames minimess speaks.

    python -m minimess.bench.baseline PORT

It does the least a server of protocol v1 must do for the benchmark's clients — subscribe
through the URL, answer `pub` with a `message` to every subscriber of the topic and an `ack` —
and nothing else: no validation, no bounded queues, no keepalive, no broker.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection, broadcast, serve

# Topic -> the connections subscribed to it.
subscribers: dict[str, set[ServerConnection]] = {}


def _topics(path: str) -> list[str]:
    return [segment.removeprefix("topic:") for segment in path.split("/") if segment.startswith("topic:")]


async def handle(connection: ServerConnection) -> None:
    assert connection.request is not None  # set by the handshake
    topics = _topics(connection.request.path)
    for topic in topics:
        subscribers.setdefault(topic, set()).add(connection)
    await connection.send(json.dumps({"type": "success", "uid": "x", "node": "baseline", "topics": topics}))
    try:
        async for data in connection:
            frame = json.loads(data)
            message_id = uuid.uuid4().hex
            message = {
                "type": "message",
                "id": message_id,
                "topic": frame["topic"],
                "from": "publisher",
                "body": frame["body"],
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
            broadcast(subscribers.get(frame["topic"], ()), json.dumps(message))
            await connection.send(json.dumps({"type": "ack", "ref": frame.get("ref"), "id": message_id}))
    finally:
        for topic in topics:
            subscribers[topic].discard(connection)


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
