"""Protocol v1 as a client sees it: every server frame and every HTTP endpoint of a real server."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.integration.server_process import ServerProcess
from tests.integration.wire import (
    http_get,
    next_frame,
    open_client,
    publish,
    send_frame,
    stats,
    subscribe_path,
    unique,
)
from tests.timeouts import scaled

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
# How far a server timestamp may be from this process's clock (same machine, so only scheduling).
CLOCK_SLACK = timedelta(seconds=10)


def parse_ts(text: str) -> datetime:
    """A server timestamp, checked to be RFC 3339 UTC with milliseconds and a Z, near now."""
    assert TIMESTAMP.fullmatch(text), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < CLOCK_SLACK * scaled(1), text
    return moment


async def barrier(connection: ClientConnection) -> None:
    """Prove no message is on its way to `connection` from a publish that was already acked.

    The memory broker fans a message out before the publisher's ack, and a connection's frames
    leave in the order they were queued, so a message would arrive before the answer to this
    `unsub` (harmless: the topic is never held).
    """
    await send_frame(connection, type="unsub", topic="barrier")
    assert await next_frame(connection) == {"type": "unsubscribed", "topic": "barrier"}


async def test_success_names_uid_node_and_url_topics_which_are_subscribed(server: ServerProcess) -> None:
    """The first frame is `success` with the uid, the node as hostname:port and the URL's distinct topics."""
    first, second = unique("first"), unique("second")
    path = subscribe_path("reader", first, second, first)
    async with (
        connect(server.url(path), open_timeout=scaled(10)) as reader,
        await open_client(server, "writer") as writer,
    ):
        assert await next_frame(reader) == {
            "type": "success",
            "uid": "reader",
            "node": f"{socket.gethostname()}:{server.port}",
            "topics": [first, second],
            "max_message_bytes": 65536,
        }
        await publish(writer, first, "on first", "p-1")
        await publish(writer, second, "on second", "p-2")
        received = [await next_frame(reader) for _ in range(2)]
        assert [(m["type"], m["topic"], m["body"]) for m in received] == [
            ("message", first, "on first"),
            ("message", second, "on second"),
        ]


async def test_time_frames_arrive_every_tick(start_server: Callable[..., ServerProcess]) -> None:
    """With --tick 0.2 every client gets `time` frames with an RFC 3339 UTC ts, one tick apart."""
    server = start_server("--tick", "0.2")
    async with await open_client(server, "clock-watcher") as connection:
        ticks = [await next_frame(connection) for _ in range(2)]
    assert [(tick["type"], set(tick)) for tick in ticks] == [("time", {"type", "ts"})] * 2
    first, second = (parse_ts(tick["ts"]) for tick in ticks)
    # At least most of one 0.2 s tick apart (ts is truncated to milliseconds), and not stuck.
    assert second - first >= timedelta(seconds=0.15)


async def test_sub_and_unsub_are_answered_and_start_and_stop_delivery(server: ServerProcess) -> None:
    """`sub` is answered by `subscribed` (a held topic too, delivered once), `unsub` by `unsubscribed`."""
    topic = unique("news")
    async with await open_client(server, "bob") as bob, await open_client(server, "alice") as alice:
        for _ in range(2):
            await send_frame(bob, type="sub", topic=topic, ref="s-1")
            assert (await next_frame(bob)).items() >= {"type": "subscribed", "topic": topic}.items()
        await publish(alice, topic, "once", "p-1")
        message = await next_frame(bob)
        assert (message["type"], message["topic"], message["body"]) == ("message", topic, "once")
        await barrier(bob)
        await send_frame(bob, type="unsub", topic=topic, ref="u-1")
        assert await next_frame(bob) == {"type": "unsubscribed", "topic": topic}
        await publish(alice, topic, "after", "p-2")
        await barrier(bob)


async def test_pub_is_acked_with_its_ref_and_the_id_of_the_message_subscribers_get(
    server: ServerProcess,
) -> None:
    """The `message` carries the id, topic, sender, body (unchanged, whatever its characters) and a UTC ts.

    A server without --trace takes a `sent` time and adds no stage times.
    """
    topic, body = unique("news"), 'héllo ✓ 日本 🎉 quotes " backslash \\ newline \n separator \u2028'
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await send_frame(alice, type="pub", topic=topic, body=body, ref="c-1", sent=1_700_000_000_000_000)
        ack = await next_frame(alice)
        assert ack == {"type": "ack", "ref": "c-1", "id": ack["id"], "offset": 0, "epoch": ack["epoch"]}
        assert MESSAGE_ID.fullmatch(ack["id"]), ack
        message = await next_frame(bob)
        assert message == {
            "type": "message",
            "id": ack["id"],
            "topic": topic,
            "from": "alice",
            "body": body,
            "ts": message["ts"],
            # The first message of a fresh topic: offset 0 of this server's epoch.
            "offset": 0,
            "epoch": ack["epoch"],
        }
        parse_ts(message["ts"])


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/healthz", 200, "ok\n"),
        # The memory broker is always usable.
        ("/readyz", 200, "ready\n"),
        # A browser's plain GET of a valid subscribe path.
        (subscribe_path("browser", "news"), 426, None),
    ],
)
async def test_plain_http_answers(server: ServerProcess, path: str, status: int, body: str | None) -> None:
    answer = await http_get(server, path)
    assert answer[0] == status
    assert body is None or answer[1] == body


async def test_stats_counters_exist_and_count(server: ServerProcess) -> None:
    before = await stats(server)
    counters = {
        "connections", "deliveries", "connections_opened", "connections_closed", "messages_published",
        "slow_consumer_closes", "inactive_closes", "error_frames", "rate_limited", "internal_errors",
    }  # fmt: skip
    assert counters <= set(before), before
    assert all(isinstance(before[name], int) and before[name] >= 0 for name in counters), before
    assert before["node"] == f"{socket.gethostname()}:{server.port}"
    topic = unique("counted")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await publish(alice, topic, "count me", "p-1")
        assert (await next_frame(bob))["body"] == "count me"
        during = await stats(server)
    assert during["messages_published"] == before["messages_published"] + 1
    assert during["deliveries"] == before["deliveries"] + 1
    assert during["connections_opened"] == before["connections_opened"] + 2
    assert during["connections"] >= 2


async def test_max_topics_bounds_the_url_with_400_and_a_sub_with_too_many_topics(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --max-topics 2 a URL naming three topics is refused; a third `sub` gets an error with its ref."""
    server = start_server("--tick", "0", "--max-topics", "2")
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url(subscribe_path("bob", "one", "two", "three")), open_timeout=scaled(10))
    assert refused.value.response.status_code == 400
    # Three segments naming two topics are within the bound.
    async with await open_client(server, "bob", "one", "two", "one") as bob:
        await send_frame(bob, type="sub", topic="three", ref="s-3")
        error = await next_frame(bob)
        assert error == {"type": "error", "code": "too_many_topics", "reason": error["reason"], "ref": "s-3"}
        assert error["reason"], error
