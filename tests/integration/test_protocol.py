"""Protocol v1 as a client sees it: every server frame and every HTTP endpoint of a real server."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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


async def frames(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` frames, in arrival order."""
    return [await next_frame(connection) for _ in range(count)]


async def barrier(connection: ClientConnection) -> None:
    """Prove no message is on its way to `connection` from a publish that was already acked.

    The memory broker fans a message out before the publisher's ack, and a connection's frames
    leave in the order they were queued, so a message would arrive before the answer to this
    `unsub` (harmless: the topic is never held).
    """
    await send_frame(connection, type="unsub", topic="barrier")
    assert await next_frame(connection) == {"type": "unsubscribed", "topic": "barrier"}


def assert_one_line(body: str) -> None:
    assert body.endswith("\n"), body
    assert body.count("\n") == 1, body


@pytest.mark.parametrize(
    ("topics", "expected"),
    [
        pytest.param((), [], id="no-topic"),
        pytest.param(("news",), ["news"], id="one-topic"),
        pytest.param(
            ("news", "afrozalm:mala:zorfa", "a.b_c-d"),
            ["news", "afrozalm:mala:zorfa", "a.b_c-d"],
            id="several-topics",
        ),
        pytest.param(("news", "sport", "news", "sport"), ["news", "sport"], id="duplicates-collapse"),
    ],
)
async def test_first_frame_is_success_with_uid_node_and_url_topics(
    server: ServerProcess, topics: tuple[str, ...], expected: list[str]
) -> None:
    """The first frame is `success` with the uid, the node as hostname:port and the URL's topics."""
    async with connect(server.url(subscribe_path("alice", *topics)), open_timeout=scaled(10)) as connection:
        assert await next_frame(connection) == {
            "type": "success",
            "uid": "alice",
            "node": f"{socket.gethostname()}:{server.port}",
            "topics": expected,
        }


async def test_url_topics_are_subscribed(server: ServerProcess) -> None:
    """Every topic in the URL is subscribed by the time `success` arrives."""
    first, second = unique("first"), unique("second")
    async with (
        await open_client(server, "reader", first, second) as reader,
        await open_client(server, "writer") as writer,
    ):
        await publish(writer, first, "on first", "p-1")
        await publish(writer, second, "on second", "p-2")
        received = await frames(reader, 2)
        assert [(m["type"], m["topic"], m["body"]) for m in received] == [
            ("message", first, "on first"),
            ("message", second, "on second"),
        ]


async def test_time_frames_arrive_every_tick(start_server: Callable[..., ServerProcess]) -> None:
    """With --tick 0.2 every client gets `time` frames with an RFC 3339 UTC ts, one tick apart."""
    server = start_server("--tick", "0.2")
    async with await open_client(server, "clock-watcher") as connection:
        ticks = await frames(connection, 2)
    assert [set(tick) for tick in ticks] == [{"type", "ts"}] * 2
    assert [tick["type"] for tick in ticks] == ["time", "time"]
    first, second = (parse_ts(tick["ts"]) for tick in ticks)
    # At least most of one 0.2 s tick apart (ts is truncated to milliseconds), and not stuck.
    assert second - first >= timedelta(seconds=0.15)


async def test_sub_answers_subscribed_and_delivers_the_topic(server: ServerProcess) -> None:
    """`sub` is answered by `subscribed` naming the topic, and the topic's messages follow."""
    topic = unique("news")
    async with await open_client(server, "bob") as bob, await open_client(server, "alice") as alice:
        await send_frame(bob, type="sub", topic=topic, ref="s-1")
        assert await next_frame(bob) == {"type": "subscribed", "topic": topic}
        await publish(alice, topic, "hello", "p-1")
        message = await next_frame(bob)
        assert (message["type"], message["topic"], message["body"]) == ("message", topic, "hello")


async def test_sub_to_a_held_topic_answers_subscribed_and_delivers_once(server: ServerProcess) -> None:
    """A second `sub` to a held topic is answered by `subscribed` and does not double deliveries."""
    topic = unique("news")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await send_frame(bob, type="sub", topic=topic)
        assert await next_frame(bob) == {"type": "subscribed", "topic": topic}
        await publish(alice, topic, "once", "p-1")
        assert (await next_frame(bob))["body"] == "once"
        await barrier(bob)


async def test_unsub_answers_unsubscribed_and_stops_delivery(server: ServerProcess) -> None:
    """`unsub` is answered by `unsubscribed`, and no message on that topic arrives after it."""
    topic = unique("news")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await publish(alice, topic, "before", "p-1")
        assert (await next_frame(bob))["body"] == "before"
        await send_frame(bob, type="unsub", topic=topic, ref="u-1")
        assert await next_frame(bob) == {"type": "unsubscribed", "topic": topic}
        await publish(alice, topic, "after", "p-2")
        await barrier(bob)


async def test_pub_is_acked_with_its_ref_and_the_message_id(server: ServerProcess) -> None:
    """`pub` is answered by `ack` echoing the ref, with the id of the `message` subscribers get.

    A server without --trace takes a `sent` time and adds no stage times to either frame.
    """
    topic = unique("news")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await send_frame(alice, type="pub", topic=topic, body="hi", ref="c-1", sent=1_700_000_000_000_000)
        ack = await next_frame(alice)
        assert ack == {"type": "ack", "ref": "c-1", "id": ack["id"]}
        assert MESSAGE_ID.fullmatch(ack["id"]), ack
        message = await next_frame(bob)
        assert message["id"] == ack["id"]
        assert "trace" not in message


async def test_pub_without_ref_is_acked_with_null_ref(server: ServerProcess) -> None:
    """A `pub` without ref is answered by an `ack` whose ref is null."""
    async with await open_client(server, "alice") as alice:
        await send_frame(alice, type="pub", topic=unique("news"), body="hi")
        ack = await next_frame(alice)
        assert ack == {"type": "ack", "ref": None, "id": ack["id"]}
        assert MESSAGE_ID.fullmatch(ack["id"]), ack


async def test_message_frame_carries_id_topic_from_body_and_ts(server: ServerProcess) -> None:
    """Another subscriber gets a `message` with a fresh id, the topic, the sender, the body and a UTC ts."""
    topic = unique("news")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        acks = [await publish(alice, topic, body, f"p-{i}") for i, body in enumerate(["one", "two"])]
        messages = await frames(bob, 2)
    for ack, message, body in zip(acks, messages, ["one", "two"], strict=True):
        assert message == {
            "type": "message",
            "id": ack["id"],
            "topic": topic,
            "from": "alice",
            "body": body,
            "ts": message["ts"],
        }
        parse_ts(message["ts"])
    assert messages[0]["id"] != messages[1]["id"]


async def test_publisher_subscribed_to_the_topic_gets_its_own_message(server: ServerProcess) -> None:
    """A publisher subscribed to the topic receives its own message as well as the ack."""
    topic = unique("news")
    async with await open_client(server, "alice", topic) as alice:
        await send_frame(alice, type="pub", topic=topic, body="echo", ref="c-1")
        received = {frame["type"]: frame for frame in await frames(alice, 2)}
        assert set(received) == {"ack", "message"}
        message = received["message"]
        assert (message["from"], message["topic"], message["body"]) == ("alice", topic, "echo")
        assert message["id"] == received["ack"]["id"]


async def test_client_not_subscribed_does_not_get_the_message(server: ServerProcess) -> None:
    """A client subscribed to other topics only does not receive a message on the topic."""
    topic = unique("news")
    async with (
        await open_client(server, "bob", topic) as bob,
        await open_client(server, "carol", unique("other")) as carol,
        await open_client(server, "alice") as alice,
    ):
        await publish(alice, topic, "for bob", "p-1")
        assert (await next_frame(bob))["body"] == "for bob"
        await barrier(carol)


async def test_late_subscriber_gets_only_messages_published_after_subscribed(server: ServerProcess) -> None:
    """A client subscribing after message A and before message B gets B as its first message, never A."""
    topic = unique("news")
    async with await open_client(server, "alice") as alice:
        await publish(alice, topic, "A", "p-a")
        async with await open_client(server, "late") as late:
            await send_frame(late, type="sub", topic=topic)
            assert await next_frame(late) == {"type": "subscribed", "topic": topic}
            ack = await publish(alice, topic, "B", "p-b")
            message = await next_frame(late)
            assert (message["type"], message["body"], message["id"]) == ("message", "B", ack["id"])
            await barrier(late)


async def test_every_subscriber_sees_the_same_order(server: ServerProcess) -> None:
    """Three subscribers see 50 messages from two interleaving publishers in one identical order."""
    topic = unique("news")
    per_publisher = 25
    async with (
        await open_client(server, "sub-1", topic) as sub1,
        await open_client(server, "sub-2", topic) as sub2,
        await open_client(server, "sub-3", topic) as sub3,
        await open_client(server, "pub-a") as pub_a,
        await open_client(server, "pub-b") as pub_b,
    ):

        async def flood(connection: ClientConnection, name: str) -> None:
            for i in range(per_publisher):
                await send_frame(connection, type="pub", topic=topic, body=f"{name}-{i}", ref=f"{name}-{i}")
            acks = await frames(connection, per_publisher)
            assert [ack["ref"] for ack in acks] == [f"{name}-{i}" for i in range(per_publisher)]

        sequences = await asyncio.gather(
            flood(pub_a, "a"),
            flood(pub_b, "b"),
            *(frames(subscriber, 2 * per_publisher) for subscriber in (sub1, sub2, sub3)),
        )
    first, second, third = ([(m["id"], m["from"], m["body"]) for m in seq] for seq in sequences[2:])
    assert first == second == third
    bodies = [body for _, _, body in first]
    # Every message exactly once, and each publisher's messages in the order it sent them.
    assert sorted(bodies) == sorted([f"{name}-{i}" for name in "ab" for i in range(per_publisher)])
    for name in "ab":
        assert [b for b in bodies if b.startswith(f"{name}-")] == [
            f"{name}-{i}" for i in range(per_publisher)
        ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("héllo ✓ 日本", id="accents-symbols-cjk"),
        pytest.param("emoji 🎉 outside the BMP", id="astral"),
        pytest.param('quotes " backslash \\ newline \n tab \t separator \u2028', id="json-escapes"),
    ],
)
async def test_unicode_bodies_survive(server: ServerProcess, body: str) -> None:
    """A body with non-ASCII and JSON-escaped characters reaches the subscriber unchanged."""
    topic = unique("unicode")
    async with await open_client(server, "bob", topic) as bob, await open_client(server, "alice") as alice:
        await publish(alice, topic, body, "p-1")
        assert (await next_frame(bob))["body"] == body


async def test_healthz_answers_200_ok(server: ServerProcess) -> None:
    """GET /healthz answers 200 with the body "ok\\n"."""
    assert await http_get(server, "/healthz") == (200, "ok\n")


async def test_readyz_answers_200_with_the_memory_broker(server: ServerProcess) -> None:
    """GET /readyz answers 200 while the broker (here the memory one) is usable."""
    assert await http_get(server, "/readyz") == (200, "ready\n")


async def test_stats_counters_exist_and_count(server: ServerProcess) -> None:
    """GET /stats is a JSON object of counters that count connections, publishes and deliveries."""
    before = await stats(server)
    counters = {
        "connections",
        "deliveries",
        "connections_opened",
        "connections_closed",
        "messages_published",
        "slow_consumer_closes",
        "inactive_closes",
        "error_frames",
        "rate_limited",
        "internal_errors",
    }
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


@pytest.mark.parametrize("path", ["/nope", "/", "/subscribe", "/healthz/extra"])
async def test_unknown_path_answers_404_with_a_one_line_reason(server: ServerProcess, path: str) -> None:
    """A path that is no endpoint answers 404 with a one-line reason naming the path."""
    status, body = await http_get(server, path)
    assert status == 404
    assert_one_line(body)
    assert path in body, body


async def test_plain_get_on_a_subscribe_path_answers_426(server: ServerProcess) -> None:
    """A plain HTTP GET on a valid /subscribe path answers 426 Upgrade Required, and the server goes on."""
    status, _ = await http_get(server, subscribe_path("browser", "news"))
    assert status == 426
    assert await http_get(server, "/healthz") == (200, "ok\n")
    async with await open_client(server, "after-browser", "news"):
        pass


async def test_sub_past_max_topics_is_refused_with_too_many_topics(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --max-topics 2 a third `sub` gets `too_many_topics` with its ref; held topics are unchanged."""
    server = start_server("--tick", "0", "--max-topics", "2")
    async with await open_client(server, "bob", "one") as bob, await open_client(server, "alice") as alice:
        await send_frame(bob, type="sub", topic="two", ref="s-2")
        assert await next_frame(bob) == {"type": "subscribed", "topic": "two"}
        await send_frame(bob, type="sub", topic="three", ref="s-3")
        error = await next_frame(bob)
        assert error == {"type": "error", "code": "too_many_topics", "reason": error["reason"], "ref": "s-3"}
        assert isinstance(error["reason"], str), error
        assert error["reason"], error
        # The refused topic is not held: its message does not arrive, the held ones' do.
        await publish(alice, "three", "not for bob", "p-3")
        await publish(alice, "two", "for bob", "p-2")
        assert (await next_frame(bob))["body"] == "for bob"
        # The limit counts held topics: after an unsub there is room again.
        await send_frame(bob, type="unsub", topic="one")
        assert await next_frame(bob) == {"type": "unsubscribed", "topic": "one"}
        await send_frame(bob, type="sub", topic="three")
        assert await next_frame(bob) == {"type": "subscribed", "topic": "three"}


async def test_url_with_more_topics_than_max_topics_answers_400(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --max-topics 2 a URL naming three topics answers 400; three segments naming two do not."""
    server = start_server("--tick", "0", "--max-topics", "2")
    path = subscribe_path("bob", "one", "two", "three")
    status, body = await http_get(server, path)
    assert status == 400
    assert_one_line(body)
    assert "2" in body, body
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url(path), open_timeout=scaled(10))
    assert refused.value.response.status_code == 400
    async with connect(server.url(subscribe_path("bob", "one", "two", "one")), open_timeout=scaled(10)) as ok:
        assert (await next_frame(ok))["topics"] == ["one", "two"]
