"""The minimess.batch subprotocol on a real server: what a client offering it reads, and one not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.integration.server_process import ServerProcess
from tests.integration.wire import open_client, publish, subscribe_path, unique
from tests.timeouts import scaled

BATCH = Subprotocol("minimess.batch")
# Bodies a split at newlines must leave whole: JSON escapes a newline inside a string.
BODIES = ["one\nline", "two\u2028three", "four\r\n", "plain"]


async def next_documents(connection: ClientConnection) -> list[dict[str, Any]]:
    """The documents of the next frame: a line each."""
    async with asyncio.timeout(scaled(10)):
        text = await connection.recv()
    assert isinstance(text, str)
    return [json.loads(line) for line in text.split("\n")]


async def frames_of_a_recovery(
    server: ServerProcess, subprotocols: Sequence[Subprotocol] | None
) -> tuple[Subprotocol | None, list[list[dict[str, Any]]]]:
    """Publish BODIES, then connect with a position before them: the subprotocol chosen, and the
    documents of each frame up to the last recovered message.

    The server pushes `subscribed` and every recovered message in one turn of its event loop
    (connection.py, _push_subscribed): with batching, what follows the turn's first write is one frame.
    """
    room = unique("room")
    publisher = await open_client(server, unique("bob"))
    try:
        first = await publish(publisher, room, "before", "before")
        for number, body in enumerate(BODIES):
            await publish(publisher, room, body, f"p-{number}")
    finally:
        await publisher.close()
    path = subscribe_path(unique("alice"), f"{room}@{first['epoch']}:{first['offset']}")
    async with connect(server.url(path), subprotocols=subprotocols, open_timeout=scaled(10)) as client:
        frames: list[list[dict[str, Any]]] = []
        while sum(document["type"] == "message" for frame in frames for document in frame) < len(BODIES):
            frames.append(await next_documents(client))
        return client.subprotocol, frames


async def test_a_client_that_offers_batch_gets_what_follows_a_turns_first_write_in_one_frame(
    server: ServerProcess,
) -> None:
    subprotocol, frames = await frames_of_a_recovery(server, [BATCH])
    assert subprotocol == BATCH
    documents = [document for frame in frames for document in frame]
    assert [document["type"] for document in documents] == ["success", "subscribed", *["message"] * 4]
    assert [document["body"] for document in documents[2:]] == BODIES
    # Every recovered message in one frame, with `subscribed` if it was not the turn's first write.
    assert [document["type"] for document in frames[-1]][-4:] == ["message"] * 4
    assert len(frames) <= 3


async def test_a_client_that_does_not_offer_batch_reads_one_document_a_frame(server: ServerProcess) -> None:
    """Without an offer, or with another subprotocol only (left unanswered, as ever)."""
    for subprotocols in (None, [Subprotocol("chat")]):
        subprotocol, frames = await frames_of_a_recovery(server, subprotocols)
        assert subprotocol is None
        assert [[document["type"] for document in frame] for frame in frames] == [
            ["success"],
            ["subscribed"],
            *[["message"]] * 4,
        ]
        assert [frame[0]["body"] for frame in frames[2:]] == BODIES
