"""--trace: stage times on pubs, acks and message frames, stamped per subscriber at fixed width."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket import codec
from minimess.adapters.websocket.codec import (
    STAMP_DIGITS,
    TRACE_TAIL,
    ack_frame,
    message_frame,
    now_us,
    stamp_queued,
    stamp_written,
    subscribed_frame,
    time_frame,
    traced_message_frame,
)
from minimess.adapters.websocket.outbound import Outbound
from minimess.app.container import build_container
from minimess.app.settings import ServerSettings
from minimess.domain.model import Message, Topic, Trace, Uid
from tests.timeouts import scaled
from tests.unit.fakes import FakeConnection
from tests.unit.running_server import next_frame, running_server
from tests.unit.wire import decode_server_frame

NEWS = Topic("news")
NOW = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
TRACE = Trace(sent_us=1_764_302_113_123_000, received_us=1_764_302_113_123_456)
QUEUED = 1_764_302_113_200_001
WRITTEN = 1_764_302_113_200_002
TRACE_KEYS = ["sent", "received", "delivered", "queued", "written"]


def _message(body: str = "hi", trace: Trace | None = TRACE) -> Message:
    return Message.create(NEWS, Uid("alice"), body, NOW, trace=trace)


def _stamped(frame: bytes, queued: int = QUEUED, written: int = WRITTEN) -> bytes:
    return stamp_written(stamp_queued(frame, queued), written)


# --- the codec -----------------------------------------------------------------------------------


def test_message_create_keeps_the_trace() -> None:
    """Message.create puts the given stage times on the message, and none when not given."""
    assert _message().trace == TRACE
    assert Message.create(NEWS, Uid("alice"), "hi", NOW).trace is None


def test_a_traced_frame_ends_with_the_placeholders() -> None:
    """Before stamping, a traced message frame ends with the fixed tail of two zero placeholders."""
    assert TRACE_TAIL == b',"queued":0000000000000000,"written":0000000000000000}}'
    assert traced_message_frame(_message()).endswith(TRACE_TAIL)


def test_a_stamped_traced_frame_is_the_message_frame_plus_a_trace() -> None:
    """Stamped, the frame decodes to the plain message's fields and then a trace with all five stages."""
    message = _message()
    before = now_us()
    frame = traced_message_frame(message)
    after = now_us()
    document = decode_server_frame(_stamped(frame))
    trace = document.pop("trace")
    assert document == decode_server_frame(message_frame(message))
    assert list(trace) == TRACE_KEYS
    assert (trace["sent"], trace["received"]) == (TRACE.sent_us, TRACE.received_us)
    assert before <= trace["delivered"] <= after
    assert (trace["queued"], trace["written"]) == (QUEUED, WRITTEN)


def test_an_untraced_message_gets_null_client_stages() -> None:
    """A message without a Trace (published on an untraced server) renders sent and received as null."""
    trace = decode_server_frame(_stamped(traced_message_frame(_message(trace=None))))["trace"]
    assert list(trace) == TRACE_KEYS
    assert (trace["sent"], trace["received"]) == (None, None)


@pytest.mark.parametrize(
    "body", ["hi", "x" * 200, "x" * 70_000], ids=["7-bit-length", "16-bit-length", "64-bit-length"]
)
def test_stamping_replaces_exactly_the_two_placeholders(body: str) -> None:
    """Each stamp writes 16 digits over its placeholder; every other byte, the header too, stays."""
    frame = traced_message_frame(_message(body))
    queued = stamp_queued(frame, QUEUED)
    assert len(queued) == len(frame)
    assert queued[:-45] == frame[:-45]
    assert queued[-45:-29] == b"%d" % QUEUED
    assert queued[-29:] == frame[-29:]
    written = stamp_written(queued, WRITTEN)
    assert len(written) == len(frame)
    assert written[:-18] == queued[:-18]
    assert written[-18:-2] == b"%d" % WRITTEN
    assert written[-2:] == b"}}"
    assert decode_server_frame(written)["body"] == body


def test_the_stamps_are_independent_and_set_once() -> None:
    """written may be stamped first, and a stamp already there is never overwritten."""
    frame = traced_message_frame(_message())
    written_first = stamp_queued(stamp_written(frame, WRITTEN), QUEUED)
    assert written_first == _stamped(frame)
    assert _stamped(_stamped(frame), queued=1, written=2) == _stamped(frame)


def test_stamps_are_zero_padded_to_sixteen_digits() -> None:
    """A small time keeps the fixed width (leading zeros), so the frame length never changes."""
    frame = traced_message_frame(_message())
    assert stamp_queued(frame, 42)[-45:-29] == b"0" * (STAMP_DIGITS - 2) + b"42"


@pytest.mark.parametrize("now", [-1, 10**STAMP_DIGITS])
def test_a_time_that_does_not_fit_sixteen_digits_is_refused(now: int) -> None:
    """A negative time or one past the year 2286 would change the frame's length: ValueError."""
    frame = traced_message_frame(_message())
    with pytest.raises(ValueError, match="stamp"):
        stamp_queued(frame, now)
    with pytest.raises(ValueError, match="stamp"):
        stamp_written(frame, now)


TAIL_TEXT = TRACE_TAIL.decode()


@pytest.mark.parametrize(
    "frame",
    [
        time_frame(NOW),
        subscribed_frame(NEWS),
        ack_frame("c-1", "m-1"),
        ack_frame("c-1", "m-1", (TRACE.received_us, TRACE.received_us + 1)),
        message_frame(_message()),
        message_frame(_message(TAIL_TEXT)),
        message_frame(_message("ends with the tail" + TAIL_TEXT)),
        message_frame(_message('0000000000000000,"written":0000000000000000}}')),
        b"",
        TRACE_TAIL[1:],
    ],
    ids=[
        "time",
        "subscribed",
        "ack",
        "traced-ack",
        "message",
        "message-body-is-tail",
        "message-body-ends-with-tail",
        "message-body-is-part-of-tail",
        "empty",
        "short",
    ],
)
def test_stamping_leaves_every_other_frame_unchanged(frame: bytes) -> None:
    """Frames that are not traced message frames, whatever their body holds, come back as they were."""
    assert stamp_queued(frame, QUEUED) == frame
    assert stamp_written(frame, WRITTEN) == frame


def test_a_body_holding_the_tail_text_is_not_stamped_in_a_traced_frame() -> None:
    """In a traced frame only the real tail is stamped; the tail's text inside the body stays as sent."""
    body = TAIL_TEXT + "\n" + TAIL_TEXT
    document = decode_server_frame(_stamped(traced_message_frame(_message(body))))
    assert document["body"] == body
    assert (document["trace"]["queued"], document["trace"]["written"]) == (QUEUED, WRITTEN)


# --- Outbound ------------------------------------------------------------------------------------


def _outbound(connection: FakeConnection, trace: bool = True) -> Outbound:
    return Outbound(cast(ServerConnection, connection), queue_size=8, on_overflow=_no_overflow, trace=trace)


def _no_overflow() -> None:
    raise AssertionError("the queue overflowed")


def _split(data: bytes, lengths: list[int]) -> list[bytes]:
    """`data` cut into consecutive pieces of `lengths` bytes, with nothing left over."""
    pieces, start = [], 0
    for length in lengths:
        pieces.append(data[start : start + length])
        start += length
    assert start == len(data)
    return pieces


def _stages(frame: bytes) -> dict[str, Any]:
    trace = decode_server_frame(frame)["trace"]
    assert isinstance(trace, dict)
    return trace


async def test_a_direct_write_is_stamped_queued_then_written() -> None:
    """On an idle socket push writes the frame at once, with queued <= written, both taken during push."""
    connection = FakeConnection()
    frame = traced_message_frame(_message())
    before = now_us()
    _outbound(connection).push(frame)
    after = now_us()
    (written,) = connection.transport.writes
    assert len(written) == len(frame)
    stages = _stages(written)
    assert stages["delivered"] <= before <= stages["queued"] <= stages["written"] <= after


async def test_frames_collected_in_a_turn_are_stamped_written_at_its_end() -> None:
    """After the turn's direct write, later frames are queued when pushed and written when the turn ends."""
    connection = FakeConnection()
    outbound = _outbound(connection)
    outbound.push(traced_message_frame(_message("first")))
    frame = traced_message_frame(_message())
    outbound.push(frame)
    pushed = now_us()
    connection.transport.written.clear()
    async with asyncio.timeout(scaled(5)):
        await connection.transport.written.wait()
    first, second = connection.transport.writes
    assert len(second) == len(frame)
    stages = _stages(second)
    assert _stages(first)["written"] <= stages["queued"] <= pushed <= stages["written"]


async def test_frames_drained_by_the_writer_are_stamped_when_written() -> None:
    """Queued behind a paused socket, each traced frame of the batch is stamped written at write time."""
    connection = FakeConnection()
    outbound = _outbound(connection)
    frames = [
        traced_message_frame(_message("one")),
        ack_frame("c-1", "m-1"),
        traced_message_frame(_message()),
    ]
    connection.paused = True
    for frame in frames:
        outbound.push(frame)
    outbound.flush()  # the socket is paused: the frames go to the writer's queue
    pushed = now_us()
    assert connection.transport.writes == []
    connection.paused = False
    writer = asyncio.create_task(outbound.run_writer())
    try:
        async with asyncio.timeout(scaled(5)):
            await connection.transport.written.wait()
    finally:
        writer.cancel()
    (batch,) = connection.transport.writes
    one, ack, two = _split(batch, [len(frame) for frame in frames])
    assert ack == frames[1]
    for written in (one, two):
        stages = _stages(written)
        assert stages["queued"] <= pushed <= stages["written"]
    assert _stages(one)["written"] == _stages(two)["written"]


async def test_without_trace_outbound_writes_the_frame_as_pushed() -> None:
    """Without --trace the very bytes pushed are written: no stamping, no copy."""
    connection = FakeConnection()
    frame = traced_message_frame(_message())
    _outbound(connection, trace=False).push(frame)
    async with asyncio.timeout(scaled(5)):
        await connection.transport.written.wait()
    assert connection.transport.writes[0] is frame


# --- wiring --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("trace", "render"), [(False, message_frame), (True, traced_message_frame)])
def test_the_container_picks_the_renderer_by_the_trace_setting(trace: bool, render: object) -> None:
    """The hub renders plain message frames, or traced ones when the server runs with --trace."""
    assert build_container(ServerSettings(trace=trace)).hub()._render is render


@pytest.fixture
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """A server on a free loopback port, traced as the test's parameter says, stopped afterwards."""
    settings = ServerSettings(port=0, tick=0, ping_interval=0, node_id="unit", trace=request.param)
    async with running_server(settings) as running:
        yield running.port


async def _publish_to_self(port: int, **fields: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Connect subscribed to news, publish on news, and return the message frame and the ack."""
    async with connect(f"ws://127.0.0.1:{port}/subscribe/id:alice/topic:news") as alice:
        assert (await next_frame(alice))["type"] == "success"
        await alice.send(json.dumps({"type": "pub", "topic": "news", "body": "hi", "ref": "a-1", **fields}))
        message, ack = await next_frame(alice), await next_frame(alice)
    assert (message["type"], ack["type"]) == ("message", "ack")
    return message, ack


@pytest.mark.parametrize("port", [True], indirect=True)
async def test_a_traced_server_stamps_every_stage_in_order(port: int) -> None:
    """With --trace the ack and the message carry the stages, in order; delivered precedes accepted."""
    sent = now_us()
    message, ack = await _publish_to_self(port, sent=sent)
    stages = message["trace"]
    assert list(stages) == TRACE_KEYS
    assert stages["sent"] == sent
    assert ack["trace"]["received"] == stages["received"]
    assert (
        sent <= stages["received"] <= stages["delivered"] <= stages["queued"] <= stages["written"] <= now_us()
    )
    # The memory broker delivers inside publish: fan-out happens before publish returns.
    assert stages["delivered"] <= ack["trace"]["accepted"]


@pytest.mark.parametrize("port", [True], indirect=True)
async def test_a_pub_without_sent_counts_as_sent_when_received(port: int) -> None:
    """A client that does not say when it sent gets sent equal to received."""
    message, _ack = await _publish_to_self(port)
    assert message["trace"]["sent"] == message["trace"]["received"]


@pytest.mark.parametrize("port", [False], indirect=True)
async def test_an_untraced_server_ignores_sent_and_adds_nothing(port: int) -> None:
    """Without --trace a pub's `sent` is accepted and ignored, and no frame carries a trace."""
    message, ack = await _publish_to_self(port, sent=now_us())
    assert "trace" not in message
    assert "trace" not in ack
    assert codec.message_from_document(message).body == "hi"
