"""Bad input from one client gets a clear answer, and the server and every other client keep working."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close, Frame, Opcode

from tests.integration.server_process import ServerProcess
from tests.integration.wire import (
    RawClient,
    frame_of_type,
    http_get,
    logged,
    next_frame,
    open_client,
    send_frame,
    stats,
)
from tests.timeouts import scaled

# The topic the innocent bystander of every test listens on; bad frames aim at it too, so that
# a bad frame that slipped through as a message would reach the bystander first.
ROOM = "room"
UID_RULE = "[A-Za-z0-9_.-]{1,64}"
TOPIC_RULE = "[A-Za-z0-9_.:-]{1,128}"
USAGE = "/subscribe/id:<uid>"


def as_json(document: Any) -> str:
    return json.dumps(document)


async def assert_round_trip(sender: ClientConnection, uid: str, innocent: ClientConnection) -> None:
    """`sender` still subscribes and publishes, and `innocent` receives what it publishes next."""
    await send_frame(sender, type="sub", topic=ROOM, ref="still-sub")
    assert await next_frame(sender) == {"type": "subscribed", "topic": ROOM}
    await send_frame(sender, type="pub", topic=ROOM, body=f"{uid} still works", ref="still-pub")
    answers = {frame["type"]: frame for frame in [await next_frame(sender), await next_frame(sender)]}
    assert set(answers) == {"ack", "message"}, answers
    assert answers["ack"]["ref"] == "still-pub"
    # The innocent's next frame is this message: nothing the bad input caused reached it first.
    message = await next_frame(innocent)
    assert (message["type"], message["from"], message["body"]) == ("message", uid, f"{uid} still works")
    assert message["id"] == answers["ack"]["id"]


async def assert_still_serves(server: ServerProcess, innocent: ClientConnection) -> None:
    """A fresh client can publish and `innocent`, connected all along, receives it; /healthz is 200."""
    async with await open_client(server, "newcomer") as newcomer:
        await assert_round_trip(newcomer, "newcomer", innocent)
    assert await http_get(server, "/healthz") == (200, "ok\n")


# id: (what the client sends, the error code it gets, the ref echoed in the error)
BAD_FRAMES: dict[str, tuple[str | bytes, str, str | None]] = {
    "not-json": ("{not json", "bad_frame", None),
    "empty-text": ("", "bad_frame", None),
    "json-nested-too-deep": ("[" * 5000 + "]" * 5000, "bad_frame", None),
    "json-list": (as_json(["sub", ROOM]), "bad_frame", None),
    "json-number": ("42", "bad_frame", None),
    "json-string": (as_json("sub"), "bad_frame", None),
    "json-null": ("null", "bad_frame", None),
    "missing-type": (as_json({"topic": ROOM, "body": "x", "ref": "r-1"}), "bad_frame", "r-1"),
    "number-type": (as_json({"type": 1, "topic": ROOM, "ref": "r-2"}), "bad_frame", "r-2"),
    "null-type": (as_json({"type": None, "topic": ROOM, "ref": "r-3"}), "bad_frame", "r-3"),
    "unknown-type": (
        as_json({"type": "publish", "topic": ROOM, "body": "x", "ref": "r-4"}),
        "unknown_type",
        "r-4",
    ),
    "type-case": (as_json({"type": "PUB", "topic": ROOM, "body": "x", "ref": "r-5"}), "unknown_type", "r-5"),
    "sub-missing-topic": (as_json({"type": "sub", "ref": "r-6"}), "bad_frame", "r-6"),
    "unsub-number-topic": (as_json({"type": "unsub", "topic": 7, "ref": "r-7"}), "bad_frame", "r-7"),
    "pub-missing-topic": (as_json({"type": "pub", "body": "x", "ref": "r-8"}), "bad_frame", "r-8"),
    "pub-list-topic": (
        as_json({"type": "pub", "topic": [ROOM], "body": "x", "ref": "r-9"}),
        "bad_frame",
        "r-9",
    ),
    "missing-body": (as_json({"type": "pub", "topic": ROOM, "ref": "r-10"}), "bad_frame", "r-10"),
    "number-body": (as_json({"type": "pub", "topic": ROOM, "body": 7, "ref": "r-11"}), "bad_frame", "r-11"),
    "null-body": (as_json({"type": "pub", "topic": ROOM, "body": None, "ref": "r-12"}), "bad_frame", "r-12"),
    "number-ref": (as_json({"type": "pub", "topic": ROOM, "body": "x", "ref": 7}), "bad_frame", None),
    "object-ref": (
        as_json({"type": "pub", "topic": ROOM, "body": "x", "ref": {"id": "r"}}),
        "bad_frame",
        None,
    ),
    "ref-too-long": (
        as_json({"type": "pub", "topic": ROOM, "body": "x", "ref": "r" * 129}),
        "bad_frame",
        None,
    ),
    "sub-bad-topic": (as_json({"type": "sub", "topic": "two words", "ref": "r-13"}), "bad_topic", "r-13"),
    "unsub-empty-topic": (as_json({"type": "unsub", "topic": "", "ref": "r-14"}), "bad_topic", "r-14"),
    "pub-bad-topic": (
        as_json({"type": "pub", "topic": "r@@m", "body": "x", "ref": "r-15"}),
        "bad_topic",
        "r-15",
    ),
    "topic-too-long": (as_json({"type": "sub", "topic": "t" * 129, "ref": "r-16"}), "bad_topic", "r-16"),
    "non-ascii-topic": (as_json({"type": "sub", "topic": "日本", "ref": "r-17"}), "bad_topic", "r-17"),
    "binary-frame": (as_json({"type": "sub", "topic": ROOM}).encode(), "bad_frame", None),
}


@pytest.mark.parametrize(("data", "code", "ref"), list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
async def test_bad_frame_gets_an_error_and_everyone_keeps_working(
    server: ServerProcess, data: str | bytes, code: str, ref: str | None
) -> None:
    """A bad frame gets an `error` with its code and readable ref; sender and bystander keep working."""
    async with (
        await open_client(server, "innocent", ROOM) as innocent,
        await open_client(server, "offender") as offender,
    ):
        await offender.send(data)
        error = await next_frame(offender)
        assert error == {"type": "error", "code": code, "reason": error["reason"], "ref": ref}
        assert isinstance(error["reason"], str), error
        assert error["reason"], error
        await assert_round_trip(offender, "offender", innocent)


async def test_error_frames_are_counted_in_stats(server: ServerProcess) -> None:
    """Each `error` frame sent counts once in /stats error_frames."""
    before = (await stats(server))["error_frames"]
    async with await open_client(server, "offender") as offender:
        for _ in range(3):
            await offender.send("{not json")
            assert (await next_frame(offender))["code"] == "bad_frame"
    assert (await stats(server))["error_frames"] == before + 3


async def test_invalid_utf8_text_frame_closes_only_that_connection_with_1007(server: ServerProcess) -> None:
    """A text frame that is not UTF-8 closes that connection with 1007; the others keep working."""
    async with await open_client(server, "innocent", ROOM) as innocent:
        offender = await open_client(server, "offender")
        await offender.send(b'{"type":"pub","topic":"room","body":"\xff"}', text=True)
        with pytest.raises(ConnectionClosedError) as closed:
            await next_frame(offender)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1007
        await assert_still_serves(server, innocent)


def pub_of_size(size: int) -> str:
    """A valid `pub` frame to ROOM whose UTF-8 encoding is exactly `size` bytes."""
    empty = as_json({"type": "pub", "topic": ROOM, "body": "", "ref": "big"})
    frame = as_json({"type": "pub", "topic": ROOM, "body": "x" * (size - len(empty)), "ref": "big"})
    assert len(frame.encode()) == size
    return frame


async def test_frame_over_max_message_bytes_closes_only_that_connection_with_1009(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --max-message-bytes 1024 a 1024-byte frame is served and a 1025-byte one closes with 1009."""
    server = start_server("--tick", "0", "--max-message-bytes", "1024")
    async with await open_client(server, "innocent", ROOM) as innocent:
        offender = await open_client(server, "offender")
        await offender.send(pub_of_size(1024))
        assert (await next_frame(offender))["type"] == "ack"
        assert len((await next_frame(innocent))["body"]) > 900
        await offender.send(pub_of_size(1025))
        with pytest.raises(ConnectionClosedError) as closed:
            await next_frame(offender)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        await assert_still_serves(server, innocent)


BAD_PATHS = [
    pytest.param("/subscribe/id:b@d", 400, ["uid", UID_RULE], id="uid-bad-character"),
    pytest.param("/subscribe/id:" + "u" * 65, 400, ["uid", UID_RULE], id="uid-too-long"),
    pytest.param("/subscribe/id:", 400, ["uid", UID_RULE], id="uid-empty"),
    pytest.param("/subscribe/id:al%20ice", 400, ["uid", UID_RULE], id="uid-escaped-space"),
    pytest.param("/subscribe/id:alice/topic:b@d", 400, ["topic", TOPIC_RULE], id="topic-bad-character"),
    pytest.param("/subscribe/id:alice/topic:", 400, ["topic", TOPIC_RULE], id="topic-empty"),
    pytest.param("/subscribe/id:alice/topic:" + "t" * 129, 400, ["topic", TOPIC_RULE], id="topic-too-long"),
    pytest.param("/subscribe/foo", 400, [USAGE], id="no-id-segment"),
    pytest.param("/subscribe/", 400, [USAGE], id="nothing-after-subscribe"),
    pytest.param("/subscribe/id:alice/room:news", 400, ["room:news", USAGE], id="unknown-segment"),
    pytest.param("/subscribe/id:alice//topic:news", 400, [USAGE], id="empty-segment"),
    pytest.param("/nope", 404, ["/nope"], id="unknown-path"),
    pytest.param("/subscribe", 404, ["/subscribe"], id="subscribe-without-slash"),
]


def assert_one_line_reason(body: str, mentions: list[str]) -> None:
    assert body.endswith("\n"), body
    assert body.count("\n") == 1, body
    for mention in mentions:
        assert mention in body, (mention, body)


@pytest.mark.parametrize(("path", "status", "mentions"), BAD_PATHS)
async def test_bad_url_is_refused_before_the_upgrade(
    server: ServerProcess, path: str, status: int, mentions: list[str]
) -> None:
    """A WebSocket client asking for a bad URL gets an HTTP error with a one-line reason, no upgrade."""
    async with await open_client(server, "innocent", ROOM) as innocent:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url(path), open_timeout=scaled(10))
        response = refused.value.response
        assert response.status_code == status
        assert_one_line_reason(response.body.decode(), mentions)
        await assert_still_serves(server, innocent)


@pytest.mark.parametrize(("path", "status", "mentions"), BAD_PATHS)
async def test_bad_url_is_refused_to_plain_http(
    server: ServerProcess, path: str, status: int, mentions: list[str]
) -> None:
    """A plain HTTP GET of a bad URL gets the same status and one-line reason."""
    answer_status, body = await http_get(server, path)
    assert answer_status == status
    assert_one_line_reason(body, mentions)


async def test_flooding_client_is_rate_limited_and_delays_nobody(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --rate-limit 50 a client sending 500 frames gets `rate_limited`; others' round trips go on."""
    server = start_server("--tick", "0", "--rate-limit", "50")
    flood = 500
    async with (
        await open_client(server, "innocent", ROOM) as innocent,
        await open_client(server, "neighbour") as neighbour,
        await open_client(server, "flooder") as flooder,
    ):
        for i in range(flood):
            await send_frame(flooder, type="pub", topic="flood", body="spam", ref=f"f-{i}")

        async def flooder_answers() -> list[dict[str, Any]]:
            # Every frame is answered, by an ack or by an error.
            return [await next_frame(flooder) for _ in range(flood)]

        async def round_trips() -> None:
            for i in range(20):
                await send_frame(neighbour, type="pub", topic=ROOM, body=f"during flood {i}", ref=f"n-{i}")
                assert (await next_frame(neighbour))["ref"] == f"n-{i}"
                assert (await next_frame(innocent))["body"] == f"during flood {i}"

        answers, _ = await asyncio.gather(flooder_answers(), round_trips())
        limited = [a for a in answers if a["type"] == "error" and a["code"] == "rate_limited"]
        acks = [a for a in answers if a["type"] == "ack"]
        assert len(limited) >= 1
        assert len(limited) + len(acks) == flood, [a for a in answers if a not in limited and a not in acks]
        assert all(error["reason"] for error in limited)
        counters = await stats(server)
        assert counters["rate_limited"] == len(limited)
        assert counters["messages_published"] == len(acks) + 20
        assert await http_get(server, "/healthz") == (200, "ok\n")
        # Once its rate falls under the limit (tokens refill with time), the flooder is served again.
        await served_again(flooder, {"type": "sub", "topic": "calm"}, "subscribed")
        ack = await served_again(
            flooder, {"type": "pub", "topic": ROOM, "body": "calm now", "ref": "c"}, "ack"
        )
        message = await next_frame(innocent)
        assert (message["from"], message["body"], message["id"]) == ("flooder", "calm now", ack["id"])


async def served_again(connection: ClientConnection, frame: dict[str, Any], answer: str) -> dict[str, Any]:
    """Send `frame` until it is answered by `answer` instead of `rate_limited`; that answer.

    A refused frame takes no token, so each retry costs the server one error frame, and the
    round trip of each try paces the loop; the bound is the time the bucket takes to refill.
    """
    async with asyncio.timeout(scaled(5)):
        while True:
            await send_frame(connection, **frame)
            reply = await next_frame(connection)
            if reply["type"] == answer:
                return reply
            assert reply["code"] == "rate_limited", reply


# Pings off, so that only the slow-consumer path can end a connection that never reads.
SLOW_CONSUMER_OPTIONS = (
    *("--tick", "0", "--ping-interval", "0", "--queue-size", "8"),
    *("--rate-limit", "0", "--max-message-bytes", "65536"),
)
# A tiny receive buffer, so that what `sleepy` does not read piles up in the server, not the kernel.
SLEEPY_RECEIVE_BUFFER = 4096
# 12 MB in all: more than a connection's kernel buffers, its write buffer and its queue hold.
LARGE_BODIES = [f"{i:04d}:" + "x" * (30 * 1024) for i in range(400)]


async def test_client_that_never_reads_is_closed_as_slow_consumer_and_delays_nobody(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A subscriber that stops reading is closed with 4000 and counted; the others get everything."""
    # A long close timeout: the closing handshake must still be pending when `sleepy` reads at the end.
    server = start_server(*SLOW_CONSUMER_OPTIONS, "--close-timeout", str(scaled(30)))
    bodies, count, window = LARGE_BODIES, len(LARGE_BODIES), 32
    sleepy = await RawClient.connect(server, "sleepy", ROOM, receive_buffer=SLEEPY_RECEIVE_BUFFER)
    try:
        assert (await sleepy.next_text())["type"] == "success"
        # From here on `sleepy` reads nothing until the end of the test.
        async with (
            await open_client(server, "fast", ROOM) as fast,
            await open_client(server, "publisher") as publisher,
        ):
            received: list[str] = []
            progress = asyncio.Condition()

            async def subscribe() -> None:
                for _ in range(count):
                    message = await next_frame(fast)
                    async with progress:
                        received.append(message["body"])
                        progress.notify_all()

            async def received_at_least(n: int) -> None:
                async with progress:
                    await progress.wait_for(lambda: len(received) >= n)

            async def publish() -> None:
                # Keep at most `window` messages ahead of the fast subscriber, so that it stays fast.
                for i, body in enumerate(bodies):
                    await received_at_least(i - window)
                    await send_frame(publisher, type="pub", topic=ROOM, body=body, ref=f"p-{i}")

            async def acks() -> list[str]:
                return [(await next_frame(publisher))["ref"] for _ in range(count)]

            async with asyncio.timeout(scaled(30)):
                _, _, refs = await asyncio.gather(subscribe(), publish(), acks())
            assert refs == [f"p-{i}" for i in range(count)]
            assert received == bodies
            await logged(server, "slow_consumer_closed")
            counters = await stats(server)
            assert counters["slow_consumer_closes"] == 1
            assert counters["messages_published"] == count
        # Reading now, `sleepy` finds an in-order prefix of the messages, then the 4000 close frame.
        async with asyncio.timeout(scaled(10)):
            seen = 0
            while isinstance(event := await sleepy.next_event(), Frame) and event.opcode is Opcode.TEXT:
                assert json.loads(bytes(event.data))["body"] == bodies[seen]
                seen += 1
        assert seen < count
        assert isinstance(event, Frame), event
        assert event.opcode is Opcode.CLOSE, event
        assert Close.parse(bytes(event.data)).code == 4000
    finally:
        sleepy.close()


async def test_slow_consumer_that_never_reads_is_dropped_within_close_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A slow consumer that never reads its 4000 close frame is dropped once --close-timeout passes."""
    close_timeout = 0.5
    server = start_server(*SLOW_CONSUMER_OPTIONS, "--close-timeout", str(close_timeout))
    sleepy = await RawClient.connect(server, "sleepy", ROOM, receive_buffer=SLEEPY_RECEIVE_BUFFER)
    try:
        assert (await sleepy.next_text())["type"] == "success"
        async with await open_client(server, "publisher") as publisher:
            for i, body in enumerate(LARGE_BODIES):
                await send_frame(publisher, type="pub", topic=ROOM, body=body, ref=f"p-{i}")
            for _ in LARGE_BODIES:
                assert (await next_frame(publisher))["type"] == "ack"
            (closed,) = await logged(server, "slow_consumer_closed")
            await logged(
                server, "client_disconnected", within=close_timeout + 2, connection_id=closed["connection_id"]
            )
            assert (await stats(server))["connections"] == 1
    finally:
        sleepy.close()


async def test_several_x_forwarded_for_lines_are_one_list_and_break_nothing(server: ServerProcess) -> None:
    """A request with two X-Forwarded-For header lines (as HAProxy sends them) is served like any other."""
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")]
    client = await open_client(server, "forwarded", additional_headers=headers)
    try:
        await send_frame(client, type="sub", topic="xff")
        assert (await frame_of_type(client, "subscribed"))["topic"] == "xff"
        await send_frame(client, type="pub", topic="xff", body="still here", ref="x-1")
        assert (await frame_of_type(client, "message"))["body"] == "still here"
        assert (await frame_of_type(client, "ack"))["ref"] == "x-1"
    finally:
        await client.close()
