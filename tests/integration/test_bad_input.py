"""Bad input from one client gets a clear answer, and the server and every other client keep working.

The parsing rules themselves, case by case, are tested in tests/unit (test_client_frames.py for
frames, test_paths.py for URLs); here one case of each answer a client can get.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.integration.server_process import ServerProcess
from tests.integration.wire import close_code, http_get, next_frame, open_client, send_frame, stats
from tests.timeouts import scaled

# The topic the innocent bystander of every test listens on; bad frames aim at it too, so that
# a bad frame that slipped through as a message would reach the bystander first.
ROOM = "room"


async def assert_round_trip(sender: ClientConnection, uid: str, innocent: ClientConnection) -> None:
    """`sender` still subscribes and publishes, and `innocent` receives what it publishes next."""
    await send_frame(sender, type="sub", topic=ROOM, ref="still-sub")
    assert (await next_frame(sender)).items() >= {"type": "subscribed", "topic": ROOM}.items()
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


@pytest.mark.parametrize(
    ("data", "code", "ref"),
    [
        pytest.param("{not json", "bad_frame", None, id="not-json"),
        pytest.param('{"type":"pub","topic":"room","ref":"r-1"}', "bad_frame", "r-1", id="no-body"),
        pytest.param(b'{"type":"sub","topic":"room"}', "bad_frame", None, id="binary-frame"),
        pytest.param('{"type":"PUB","topic":"room","ref":"r-2"}', "unknown_type", "r-2", id="type"),
        pytest.param('{"type":"sub","topic":"r@@m","ref":"r-3"}', "bad_topic", "r-3", id="topic"),
        pytest.param(
            '{"type":"sub","topic":"room","since":"yesterday","ref":"s-1"}',
            "bad_frame",
            "s-1",
            id="since-type",
        ),
        pytest.param(
            '{"type":"sub","topic":"room","since":{"epoch":"e","offset":-2},"ref":"s-2"}',
            "bad_frame",
            "s-2",
            id="since-negative",
        ),
        pytest.param(
            '{"type":"sub","topic":"room","since":{"epoch":"e","offset":18446744073709551616},"ref":"s-3"}',
            "bad_frame",
            "s-3",
            id="since-huge",
        ),
        pytest.param(
            '{"type":"sub","topic":"room","since":{"epoch":"e/../","offset":1},"ref":"s-4"}',
            "bad_frame",
            "s-4",
            id="since-epoch",
        ),
        pytest.param(
            '{"type":"pub","topic":"room","body":"b","id":"short","ref":"i-1"}',
            "bad_frame",
            "i-1",
            id="id-short",
        ),
        pytest.param(
            '{"type":"pub","topic":"room","body":"b","id":"' + "x" * 65 + '","ref":"i-2"}',
            "bad_frame",
            "i-2",
            id="id-long",
        ),
        pytest.param(
            '{"type":"pub","topic":"room","body":"b","id":"sixteen chars!!!","ref":"i-3"}',
            "bad_frame",
            "i-3",
            id="id-characters",
        ),
    ],
)
async def test_a_bad_frame_gets_a_counted_error_and_everyone_keeps_working(
    server: ServerProcess, data: str | bytes, code: str, ref: str | None
) -> None:
    """An `error` with the code, a reason and the ref if readable; /stats counts it; nobody else is hurt."""
    before = (await stats(server))["error_frames"]
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
    assert (await stats(server))["error_frames"] == before + 1


def pub_of_size(size: int) -> str:
    """A valid `pub` frame to ROOM whose UTF-8 encoding is exactly `size` bytes."""
    empty = json.dumps({"type": "pub", "topic": ROOM, "body": "", "ref": "big"})
    frame = json.dumps({"type": "pub", "topic": ROOM, "body": "x" * (size - len(empty)), "ref": "big"})
    assert len(frame.encode()) == size
    return frame


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(b'{"type":"pub","topic":"room","body":"\xff"}', 1007, id="not-utf8"),
        pytest.param(pub_of_size(1025).encode(), 1009, id="over-max-message-bytes"),
    ],
)
async def test_a_text_frame_not_utf8_or_too_large_closes_only_that_connection(
    start_server: Callable[..., ServerProcess], frame: bytes, code: int
) -> None:
    """With --max-message-bytes 1024 a 1024-byte frame is served; one byte more, or bad UTF-8, is closed."""
    server = start_server("--tick", "0", "--max-message-bytes", "1024")
    async with await open_client(server, "innocent", ROOM) as innocent:
        offender = await open_client(server, "offender")
        await offender.send(pub_of_size(1024))
        assert (await next_frame(offender))["type"] == "ack"
        assert len((await next_frame(innocent))["body"]) > 900
        await offender.send(frame, text=True)
        assert await close_code(offender) == code
        await assert_still_serves(server, innocent)


@pytest.mark.parametrize(
    ("path", "status", "mentions"),
    [
        pytest.param("/subscribe/id:b@d", 400, ["uid", "[A-Za-z0-9_.-]{1,64}"], id="bad-uid"),
        pytest.param("/nope", 404, ["/nope"], id="unknown-path"),
        pytest.param(
            "/subscribe/id:bob/topic:room@epoch:x1", 400, ["position", "<epoch>:<offset>"], id="bad-position"
        ),
        pytest.param("/subscribe/id:bob/topic:room@e%2Fx:1", 400, ["epoch"], id="bad-epoch"),
    ],
)
async def test_a_bad_url_is_refused_with_a_one_line_reason_before_any_upgrade(
    server: ServerProcess, path: str, status: int, mentions: list[str]
) -> None:
    """A WebSocket client and a plain HTTP GET get the same status and one-line reason."""
    async with await open_client(server, "innocent", ROOM) as innocent:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url(path), open_timeout=scaled(10))
        response = refused.value.response
        for got_status, body in [
            (response.status_code, response.body.decode()),
            await http_get(server, path),
        ]:
            assert got_status == status
            assert body.endswith("\n"), body
            assert body.count("\n") == 1, body
            for mention in mentions:
                assert mention in body, (mention, body)
        await assert_still_serves(server, innocent)


async def test_a_flood_of_bad_requests_is_counted_in_the_log_not_written_line_by_line(
    start_server: Callable[..., ServerProcess],
) -> None:
    """At info, refused requests are one line at once, then one a second with a count; none is lost."""
    server = start_server("--tick", "0")
    flood = 200
    clock = asyncio.get_running_loop().time
    started = clock()
    answers = await asyncio.gather(*(http_get(server, f"/subscribe/id:bad!{n}") for n in range(flood)))
    flooded_for = clock() - started
    assert {status for status, _ in answers} == {400}
    # The count of the last interval is written when it ends: wait for lines until all are told.
    summaries = await asyncio.to_thread(server.wait_logged, "requests_rejected", within=scaled(10))
    while sum(line["count"] for line in summaries) < flood:
        summaries = await asyncio.to_thread(
            server.wait_logged, "requests_rejected", count=len(summaries) + 1, within=scaled(10)
        )
    assert sum(line["count"] for line in summaries) == flood
    assert all((line["status"], line["level"]) == (400, "info") for line in summaries)
    # One line at once, one for each second the refusals went on, and the last interval's count.
    assert len(summaries) <= 2 + math.ceil(flooded_for), (flooded_for, summaries)
    assert server.logged_so_far("request_rejected") == []


async def test_several_x_forwarded_for_lines_are_one_list_and_break_nothing(server: ServerProcess) -> None:
    """A request with two X-Forwarded-For header lines (as HAProxy sends them) is served like any other."""
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")]
    async with (
        await open_client(server, "innocent", ROOM) as innocent,
        await open_client(server, "forwarded", additional_headers=headers) as forwarded,
    ):
        await assert_round_trip(forwarded, "forwarded", innocent)


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


async def test_an_id_reused_on_another_topic_is_refused_and_delivers_nothing(server: ServerProcess) -> None:
    """The same client id on a second topic is `id_reused`; the first topic's message stands."""
    async with (
        await open_client(server, "innocent", ROOM) as innocent,
        await open_client(server, "reuser") as reuser,
    ):
        await send_frame(reuser, type="pub", topic=ROOM, body="first", id="reused-id-0123456789", ref="a")
        assert (await next_frame(reuser))["type"] == "ack"
        assert (await next_frame(innocent))["body"] == "first"
        await send_frame(
            reuser, type="pub", topic="elsewhere", body="again", id="reused-id-0123456789", ref="b"
        )
        error = await next_frame(reuser)
        assert (error["type"], error["code"], error["ref"]) == ("error", "id_reused", "b")
        await assert_round_trip(reuser, "reuser", innocent)


async def test_recovery_asked_on_many_topics_at_once_is_answered_and_stalls_nobody(
    start_server: Callable[..., ServerProcess],
) -> None:
    """100 `sub` frames with `since` in one burst: each answered, while another client is served."""
    server = start_server("--tick", "0", "--rate-limit", "0")
    async with (
        await open_client(server, "innocent", ROOM) as innocent,
        await open_client(server, "greedy") as greedy,
    ):
        await send_frame(greedy, type="pub", topic=ROOM, body="position", ref="p")
        ack = await next_frame(greedy)
        await next_frame(innocent)
        since = {"epoch": ack["epoch"], "offset": 0}
        await asyncio.gather(
            *(send_frame(greedy, type="sub", topic=f"t{n}", since=since, ref=f"r{n}") for n in range(100))
        )
        answers = [await next_frame(greedy, "subscribed") for _ in range(100)]
        assert sorted(answer["topic"] for answer in answers) == sorted(f"t{n}" for n in range(100))
        # Nothing was ever published on them after offset 0 of this epoch... except offset 0 is
        # ROOM's, so each of them asks from a position its own log never reached: refused.
        assert {answer["recovered"] for answer in answers} == {False}
        async with await open_client(server, "bystander") as bystander:
            await assert_round_trip(bystander, "bystander", innocent)
