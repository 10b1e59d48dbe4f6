"""At -v, a server's log tells each connection's story: opened, sub, unsub, publishes, errors, close.

Enough to answer "why did this client not get that message", and never a line per delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from websockets.frames import Close, Opcode

from tests.integration.server_process import LogEvent, ServerProcess
from tests.integration.wire import RawClient, logged, next_frame, open_client, publish, send_frame

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]

MAX_MESSAGE_BYTES = 1024
RATE_LIMIT = 20
MESSAGE_ID = "scripted-session-id-0001"


def story(server: ServerProcess, connection_id: str) -> list[LogEvent]:
    """Every line about one connection, in order, but the slot's release: that follows the TCP
    connection's end, before or after the close line."""
    return [
        event
        for event in server.events
        if event.get("connection_id") == connection_id and event["event"] != "connection_slot_released"
    ]


def fields(event: LogEvent, *names: str) -> dict[str, Any]:
    return {name: event.get(name) for name in names}


def position(frame: dict[str, Any]) -> dict[str, Any]:
    """The position an ack or a message frame gives, as a log line gives it."""
    return {"epoch": frame["epoch"], "offset": frame["offset"]}


async def connection_of(server: ServerProcess, uid: str) -> str:
    (connected,) = await logged(server, "client_connected", uid=uid)
    return str(connected["connection_id"])


async def test_a_scripted_session_is_told_connection_by_connection_at_debug(
    start_server: StartServer,
) -> None:
    server = start_server(
        "-v", "--tick", "0", "--max-message-bytes", str(MAX_MESSAGE_BYTES),
        "--rate-limit", str(RATE_LIMIT), "--close-timeout", "1",
    )  # fmt: skip
    # alice: news from the URL, room by a frame; she gets eleven messages, then leaves room and goes.
    alice = await open_client(server, "alice", "news")
    alice_id = await connection_of(server, "alice")
    await send_frame(alice, type="sub", topic="room", ref="s1")
    assert (await next_frame(alice, "subscribed"))["topic"] == "room"
    # bob publishes, reuses an id on another topic, and sends what is not JSON.
    bob = await open_client(server, "bob")
    bob_id = await connection_of(server, "bob")
    acks = [await publish(bob, "news", f"m{n}", f"p{n}") for n in range(10)]
    await send_frame(bob, type="pub", topic="news", body="with an id", ref="p-id", id=MESSAGE_ID)
    acks.append(await next_frame(bob, "ack"))
    await send_frame(bob, type="pub", topic="room", body="same id", ref="p-reused", id=MESSAGE_ID)
    assert (await next_frame(bob, "error"))["code"] == "id_reused"
    await bob.send("not json")
    assert (await next_frame(bob, "error"))["code"] == "bad_frame"
    for ack in acks:
        assert (await next_frame(alice, "message"))["id"] == ack["id"]
    # carol recovers news from the fifth message on.
    carol = await open_client(server, "carol")
    carol_id = await connection_of(server, "carol")
    since = position(acks[4])
    await send_frame(carol, type="sub", topic="news", ref="s-since", since=since)
    assert (await next_frame(carol, "subscribed"))["recovered"] is True
    await send_frame(alice, type="unsub", topic="room", ref="u1")
    await next_frame(alice, "unsubscribed")
    await alice.close(1000, "bye")
    (alice_closed,) = await logged(server, "client_disconnected", connection_id=alice_id)

    # alice: five lines, though she got eleven messages.
    assert [event["event"] for event in story(server, alice_id)] == [
        "client_connected",
        "topic_subscribed",
        "topic_subscribed",
        "topic_unsubscribed",
        "client_disconnected",
    ]
    connected, url_sub, frame_sub, unsub, _ = story(server, alice_id)
    assert fields(connected, "uid", "client", "topics") == {
        "uid": "alice",
        "client": "127.0.0.1",
        "topics": ["news"],
    }
    assert fields(url_sub, "topic", "ref", "since", "recovered") == {
        "topic": "news",
        "ref": None,
        "since": None,
        "recovered": None,
    }
    assert fields(frame_sub, "topic", "ref") == {"topic": "room", "ref": "s1"}
    assert fields(unsub, "topic", "ref") == {"topic": "room", "ref": "u1"}
    assert fields(alice_closed, "code", "reason", "closed_by", "frames_dropped", "rate_limited") == {
        "code": 1000, "reason": "bye", "closed_by": "client", "frames_dropped": 0, "rate_limited": 0,
    }  # fmt: skip
    assert {event["level"] for event in story(server, alice_id)} == {"debug"}

    # bob: each publish accepted with its id and position, the refused one with its code, each error sent.
    accepted = [event for event in story(server, bob_id) if event["event"] == "publish_accepted"]
    assert [fields(event, "topic", "message_id", "position", "ref") for event in accepted] == [
        {"topic": "news", "message_id": ack["id"], "position": position(ack), "ref": ack["ref"]}
        for ack in acks
    ]
    (refused,) = [event for event in story(server, bob_id) if event["event"] == "publish_refused"]
    assert fields(refused, "topic", "message_id", "code", "ref") == {
        "topic": "room", "message_id": MESSAGE_ID, "code": "id_reused", "ref": "p-reused",
    }  # fmt: skip
    errors = [event for event in story(server, bob_id) if event["event"] == "error_frame_sent"]
    assert [fields(event, "code", "ref") for event in errors] == [
        {"code": "id_reused", "ref": "p-reused"},
        {"code": "bad_frame", "ref": None},
    ]
    assert errors[1]["reason"] == "frame is not valid JSON"

    # carol: the recovery asked and what it gave.
    (recovery,) = [event for event in story(server, carol_id) if event["event"] == "topic_subscribed"]
    assert fields(recovery, "topic", "since", "recovered", "replayed", "ref") == {
        "topic": "news", "since": since, "recovered": True, "replayed": 6, "ref": "s-since",
    }  # fmt: skip
    await bob.close()
    await carol.close()


async def test_a_close_the_server_started_says_its_code_though_the_client_never_answered(
    start_server: StartServer,
) -> None:
    """A frame too large: the server closes with 1009 and its reason; websockets alone would say 1006."""
    server = start_server(
        "-v", "--tick", "0", "--max-message-bytes", str(MAX_MESSAGE_BYTES), "--close-timeout", "1"
    )
    big = await RawClient.connect(server, "big")
    try:
        big_id = await connection_of(server, "big")
        await big.send_text("x" * (MAX_MESSAGE_BYTES * 2))
        close = [
            Close.parse(bytes(frame.data)) async for frame in big.frames() if frame.opcode is Opcode.CLOSE
        ]
        assert [frame.code for frame in close] == [1009]
    finally:
        # Without a close frame of its own: the TCP connection just ends.
        big.close()
    (closed,) = await logged(server, "client_disconnected", connection_id=big_id)
    assert fields(closed, "code", "reason", "closed_by") == {
        "code": 1009,
        "reason": close[0].reason,
        "closed_by": "server",
    }
    assert str(MAX_MESSAGE_BYTES) in closed["reason"]


async def test_a_rate_limited_client_is_said_once_and_counted_in_its_close_line(
    start_server: StartServer,
) -> None:
    """At debug the connection's first dropped frame names it; at info a count over all connections."""
    server = start_server("-v", "--tick", "0", "--rate-limit", str(RATE_LIMIT))
    dave = await open_client(server, "dave")
    dave_id = await connection_of(server, "dave")
    for n in range(RATE_LIMIT * 3):
        await send_frame(dave, type="pub", topic="news", body="flood", ref=f"f{n}")
    answers = [await next_frame(dave) for _ in range(RATE_LIMIT * 3)]
    limited = sum(answer["type"] == "error" and answer["code"] == "rate_limited" for answer in answers)
    assert limited > 0
    await dave.close()
    (closed,) = await logged(server, "client_disconnected", connection_id=dave_id)
    assert closed["rate_limited"] == limited
    (said,) = server.logged_so_far("client_rate_limited", connection_id=dave_id)
    assert (said["level"], said["uid"], said["rate_limit"]) == ("debug", "dave", RATE_LIMIT)
    (counted,) = server.logged_so_far("clients_rate_limited")
    assert fields(counted, "level", "count", "uid", "rate_limit", "connection_id") == {
        "level": "info", "count": 1, "uid": "dave", "rate_limit": RATE_LIMIT, "connection_id": None,
    }  # fmt: skip
    assert [event for event in story(server, dave_id) if event["event"] == "error_frame_sent"] == []
