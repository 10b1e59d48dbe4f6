"""A bare `websockets.broadcast` server speaking minimess frames: the yardstick for fan-out cost.

usage: python benchmarks/baseline_server.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()


async def handle(connection: ServerConnection) -> None:
    subscribers.add(connection)
    await connection.send(json.dumps({"type": "success", "uid": "x", "node": "baseline", "topics": ["t"]}))
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
                "ts": datetime.now(UTC).isoformat(),
            }
            broadcast(subscribers, json.dumps(message))
            await connection.send(json.dumps({"type": "ack", "ref": frame.get("ref"), "id": message_id}))
    finally:
        subscribers.discard(connection)


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
