"""Fan-out under load: many subscribers of one topic all see the same messages in the same order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from tests.integration.server_process import ServerProcess
from tests.integration.wire import next_frame, open_client, publish, stats
from tests.timeouts import scaled

SUBSCRIBERS = 200
# Below the listen backlog (100 for asyncio servers), so that no connection attempt is refused.
CONNECT_BATCH = 50
PUBLISHERS = 2
MESSAGES_PER_PUBLISHER = 50
TOPIC = "crowd"


async def publish_all(connection: ClientConnection, name: str) -> list[str]:
    """Publish MESSAGES_PER_PUBLISHER bodies, each after the previous ack; their ids in publish order."""
    return [
        (await publish(connection, TOPIC, f"{name}:{number}", str(number)))["id"]
        for number in range(MESSAGES_PER_PUBLISHER)
    ]


async def receive(connection: ClientConnection, count: int) -> list[str]:
    """The ids of the next `count` message frames, skipping time ticks."""
    return [(await next_frame(connection, "message"))["id"] for _ in range(count)]


async def test_every_subscriber_receives_the_same_messages_in_the_same_order(
    start_server: Callable[..., ServerProcess],
) -> None:
    """200 subscribers of one topic each receive all 100 messages of 2 concurrent publishers, in one order."""
    server = start_server("--rate-limit", "0", "--tick", "0.5")
    subscribers: list[ClientConnection] = []
    publishers: list[ClientConnection] = []
    try:
        for first in range(0, SUBSCRIBERS, CONNECT_BATCH):
            subscribers += await asyncio.gather(
                *(open_client(server, f"sub-{n}", TOPIC) for n in range(first, first + CONNECT_BATCH))
            )
        publishers = list(await asyncio.gather(*(open_client(server, f"pub-{n}") for n in range(PUBLISHERS))))
        total = PUBLISHERS * MESSAGES_PER_PUBLISHER

        async with asyncio.timeout(scaled(30)):
            results = await asyncio.gather(
                *(publish_all(connection, f"pub-{n}") for n, connection in enumerate(publishers)),
                *(receive(connection, total) for connection in subscribers),
            )
        published: list[list[str]] = results[:PUBLISHERS]
        received: list[list[str]] = results[PUBLISHERS:]

        order = received[0]
        assert len(set(order)) == total
        assert set(order) == {id_ for ids in published for id_ in ids}
        assert all(ids == order for ids in received)
        for ids in published:
            mine = set(ids)
            assert [id_ for id_ in order if id_ in mine] == ids
        assert (await stats(server))["deliveries"] == SUBSCRIBERS * total
    finally:
        await asyncio.gather(*(connection.close() for connection in subscribers + publishers))
