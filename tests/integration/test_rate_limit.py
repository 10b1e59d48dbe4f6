"""A client over `--rate-limit` learns which frames were dropped (`rate_limited` carries their refs);
the log counts such clients rather than writing a line each."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.integration.server_process import ServerProcess
from tests.integration.wire import logged, next_frame, open_client, send_frame
from tests.timeouts import scaled

TOPIC = "limited"
FLOOD = 40


def pub_frame(number: int) -> str:
    """A `pub` with ref `p-<number>`, written as different clients write it.

    The ref last, after a body of 20 KB, or first; the bodies say which publish they belong to.
    """
    body = f"body {number}"
    if number % 3 == 0:
        return json.dumps(
            {"type": "pub", "topic": TOPIC, "body": body + " " + "x" * 20_000, "ref": f"p-{number}"}
        )
    if number % 3 == 1:
        return json.dumps({"ref": f"p-{number}", "type": "pub", "topic": TOPIC, "body": body})
    return json.dumps({"type": "pub", "topic": TOPIC, "body": body, "ref": f"p-{number}", "sent": 1})


async def test_each_dropped_publish_is_named_by_its_ref_and_only_acknowledged_ones_are_delivered(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Every publish gets one answer with its own ref; the subscriber gets exactly the acknowledged ones."""
    server = start_server("--tick", "0", "--rate-limit", "5")
    async with (
        await open_client(server, "reader", TOPIC) as reader,
        await open_client(server, "flooder") as flooder,
    ):
        for number in range(FLOOD):
            await flooder.send(pub_frame(number))
        answers = [await next_frame(flooder) for _ in range(FLOOD)]

        acked = [answer["ref"] for answer in answers if answer["type"] == "ack"]
        dropped = [answer["ref"] for answer in answers if answer["type"] == "error"]
        assert {answer["code"] for answer in answers if answer["type"] == "error"} == {"rate_limited"}
        # One answer per publish, each naming it: none is null, none is named twice.
        assert sorted(acked + dropped) == sorted(f"p-{number}" for number in range(FLOOD))
        assert acked, "the burst allowance lets the first few through"
        assert dropped, "40 frames at once are over a rate of 5 a second"
        # Answers come in the order the frames were sent.
        assert [answer["ref"] for answer in answers] == [f"p-{number}" for number in range(FLOOD)]

        delivered = [(await next_frame(reader, "message"))["body"].split(" x")[0] for _ in acked]
        assert delivered == [f"body {ref.removeprefix('p-')}" for ref in acked]
        # Nothing dropped arrives later: the next message the reader gets is one published after.
        ack = await served_again(flooder, {"type": "pub", "topic": TOPIC, "body": "after", "ref": "after"})
        assert (await next_frame(reader, "message"))["id"] == ack["id"]


async def served_again(connection: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send `frame` until it is acknowledged rather than `rate_limited` (the bucket refills); the ack."""
    async with asyncio.timeout(scaled(5)):
        while True:
            await send_frame(connection, **frame)
            reply = await next_frame(connection)
            if reply["type"] == "ack":
                return reply
            assert (reply["code"], reply["ref"]) == ("rate_limited", frame["ref"]), reply


async def test_clients_going_over_the_limit_in_a_loop_are_counted_at_info_not_written_one_by_one(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Connect, flood, leave, again and again: at info one line at once, then at most one a second
    with a count; together the counts tell every connection."""
    server = start_server("--tick", "0", "--rate-limit", "2")
    clients = 30
    for n in range(clients):
        async with await open_client(server, f"looper-{n}") as looper:
            for ref in range(5):
                await send_frame(looper, type="pub", topic=TOPIC, body="flood", ref=f"f{ref}")
            answers = [await next_frame(looper) for _ in range(5)]
            assert any(answer["type"] == "error" for answer in answers), answers
    # The count of the last interval is written when it ends: wait for lines until all are told.
    summaries = await logged(server, "clients_rate_limited")
    while sum(line["count"] for line in summaries) < clients:
        summaries = await logged(server, "clients_rate_limited", count=len(summaries) + 1)
    assert sum(line["count"] for line in summaries) == clients
    assert all(line["level"] == "info" and "connection_id" not in line for line in summaries), summaries
    assert summaries[-1]["uid"] == f"looper-{clients - 1}"
    # Fewer lines than connections, each at least a second (less the clocks' jitter) after the one before.
    assert len(summaries) < clients, summaries
    times = [datetime.fromisoformat(line["timestamp"]) for line in summaries]
    assert all((later - earlier).total_seconds() >= 0.95 for earlier, later in itertools.pairwise(times)), (
        times
    )
    assert server.logged_so_far("client_rate_limited") == []
