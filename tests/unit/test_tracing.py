"""--trace: stage times carried as headers, rendered into message frames, stamped at fixed width."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.websocket_server.tracing import (
    RECEIVED_HEADER,
    SENT_HEADER,
    STAMP_DIGITS,
    TRACE_TAIL,
    OutboundStamps,
    TracedRenderer,
    now_us,
    publish_headers,
    stamp_queued,
    stamp_written,
    traced_ack_frame,
)
from minimess.adapters.wire.client_frames import Pub
from minimess.adapters.wire.server_frames import ack_frame, message_frame, subscribed_frame, time_frame
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.model import Message, Topic, Uid
from tests.unit.running_server import next_frame, running_server
from tests.unit.wire import decode_server_frame

NEWS = Topic("news")
NOW = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
SENT, RECEIVED = 1_764_302_113_123_000, 1_764_302_113_123_456
QUEUED, WRITTEN = 1_764_302_113_200_001, 1_764_302_113_200_002
HEADERS = {SENT_HEADER: str(SENT), RECEIVED_HEADER: str(RECEIVED)}


def _message(body: str = "hi", headers: Mapping[str, str] = HEADERS) -> Message:
    return Message.create(NEWS, Uid("alice"), body, NOW, headers)


def _traced(body: str = "hi") -> bytes:
    return TracedRenderer.message(_message(body))


def _stamped(frame: bytes, queued: int = QUEUED, written: int = WRITTEN) -> bytes:
    return stamp_written(stamp_queued(frame, queued), written)


@pytest.mark.parametrize(("sent", "headed_sent"), [(SENT, SENT), (None, RECEIVED)])
def test_a_publish_carries_its_stage_times_and_sent_defaults_to_received(
    sent: int | None, headed_sent: int
) -> None:
    headers = publish_headers(Pub(NEWS, "hi", sent=sent), RECEIVED)
    assert headers == {SENT_HEADER: str(headed_sent), RECEIVED_HEADER: str(RECEIVED)}


def test_a_traced_ack_says_when_the_pub_was_read_and_when_the_bus_took_it() -> None:
    before = now_us()
    message = _message()
    document = decode_server_frame(traced_ack_frame("c-1", message, RECEIVED))
    after = now_us()
    accepted = document["trace"].pop("accepted")
    assert document == {
        "type": "ack",
        "ref": "c-1",
        "id": message.id,
        "offset": None,
        "epoch": None,
        "trace": {"received": RECEIVED},
    }
    assert before <= accepted <= after


def test_a_traced_message_frame_is_the_plain_one_plus_its_stage_times() -> None:
    message = _message()
    before = now_us()
    frame = TracedRenderer.message(message)
    after = now_us()
    document = decode_server_frame(_stamped(frame))
    trace = document.pop("trace")
    assert document == decode_server_frame(message_frame(message))
    delivered = trace.pop("delivered")
    assert trace == {"sent": SENT, "received": RECEIVED, "queued": QUEUED, "written": WRITTEN}
    assert before <= delivered <= after


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-1", "1e15", "1.5", " 1", "²", "١٢", "1" * (STAMP_DIGITS + 1)], ids=repr
)
def test_a_stage_header_that_is_missing_or_no_time_reads_as_null(value: str | None) -> None:
    """Another server's records, or ones written by hand, may carry anything."""
    headers = {} if value is None else {SENT_HEADER: value, RECEIVED_HEADER: value}
    trace = decode_server_frame(_stamped(TracedRenderer.message(_message(headers=headers))))["trace"]
    assert (trace["sent"], trace["received"]) == (None, None)


@pytest.mark.parametrize(
    "body", ["hi", "x" * 200, "x" * 70_000], ids=["7-bit-length", "16-bit-length", "64-bit-length"]
)
def test_each_stamp_writes_its_digits_over_its_placeholder_and_changes_no_other_byte(body: str) -> None:
    """Not even the WebSocket header, which holds the payload length."""
    frame = _traced(body)
    assert frame.endswith(TRACE_TAIL)
    queued = stamp_queued(frame, QUEUED)
    assert (queued[:-45], queued[-45:-29], queued[-29:]) == (frame[:-45], b"%d" % QUEUED, frame[-29:])
    written = stamp_written(queued, WRITTEN)
    assert (written[:-18], written[-18:-2], written[-2:]) == (queued[:-18], b"%d" % WRITTEN, b"}}")
    assert decode_server_frame(written)["body"] == body


def test_the_stamps_may_come_in_either_order_and_are_never_overwritten() -> None:
    frame = _traced()
    assert stamp_queued(stamp_written(frame, WRITTEN), QUEUED) == _stamped(frame)
    assert _stamped(_stamped(frame), queued=1, written=2) == _stamped(frame)


def test_a_small_time_is_zero_padded_to_the_fixed_width() -> None:
    assert stamp_queued(_traced(), 42)[-45:-29] == b"0" * (STAMP_DIGITS - 2) + b"42"


@pytest.mark.parametrize("now", [-1, 10**STAMP_DIGITS])
def test_a_time_that_does_not_fit_the_width_is_refused(now: int) -> None:
    with pytest.raises(ValueError, match="stamp"):
        stamp_queued(_traced(), now)
    with pytest.raises(ValueError, match="stamp"):
        stamp_written(_traced(), now)


TAIL_TEXT = TRACE_TAIL.decode()


UNTRACED = {
    "time": time_frame(NOW),
    "subscribed": subscribed_frame(NEWS, None),
    "ack": ack_frame("c-1", _message()),
    "traced-ack": traced_ack_frame("c-1", _message(), RECEIVED),
    "message": message_frame(_message()),
    "message-body-is-tail": message_frame(_message(TAIL_TEXT)),
    "message-body-ends-with-tail": message_frame(_message("ends with the tail" + TAIL_TEXT)),
    "message-body-is-part-of-tail": message_frame(_message('0000000000000000,"written":0000000000000000}}')),
    "empty": b"",
    "short": TRACE_TAIL[1:],
}


@pytest.mark.parametrize("frame", UNTRACED.values(), ids=UNTRACED.keys())
def test_a_frame_other_than_a_traced_message_is_never_stamped(frame: bytes) -> None:
    """Whatever its body holds."""
    assert stamp_queued(frame, QUEUED) == frame
    assert stamp_written(frame, WRITTEN) == frame


def test_in_a_traced_frame_only_the_real_tail_is_stamped_not_its_text_in_the_body() -> None:
    body = TAIL_TEXT + "\n" + TAIL_TEXT
    document = decode_server_frame(_stamped(_traced(body)))
    assert document["body"] == body
    assert (document["trace"]["queued"], document["trace"]["written"]) == (QUEUED, WRITTEN)


def test_outbound_stamps_take_the_time_once_per_call() -> None:
    """`queued` stamps one frame; `written` stamps a whole batch alike, its other frames unchanged."""
    before = now_us()
    queued = [OutboundStamps.queued(_traced(body)) for body in ("one", "two")]
    between = now_us()
    plain_ack = ack_frame("c-1", _message())
    one, ack, two = OutboundStamps.written([queued[0], plain_ack, queued[1]])
    after = now_us()
    assert ack == plain_ack
    stages = [decode_server_frame(frame)["trace"] for frame in (one, two)]
    assert all(before <= trace["queued"] <= between <= trace["written"] <= after for trace in stages)
    assert stages[0]["written"] == stages[1]["written"]


async def test_a_server_started_with_trace_takes_the_stages_in_order() -> None:
    """The ack and the message agree on when the pub was read; the memory bus delivers before it
    accepts. (tests/integration/test_bench.py checks that every delivery carries every stage.)"""
    settings = ServeSettings(
        trace=True,
        server=WebSocketSettings(port=0, ping_interval=0, node_id="unit"),
        messaging=MessagingSettings(tick=0),
    )
    async with running_server(build_container(settings)) as server:
        alice = await server.client("alice", "news")
        sent = now_us()
        await alice.send(json.dumps({"type": "pub", "topic": "news", "body": "hi", "sent": sent}))
        message, ack = await next_frame(alice), await next_frame(alice)
        await alice.close()
    stages, ack_stages = message["trace"], ack["trace"]
    assert sent == stages["sent"] <= stages["received"] == ack_stages["received"]
    assert stages["received"] <= stages["delivered"] <= stages["queued"] <= stages["written"] <= now_us()
    assert stages["delivered"] <= ack_stages["accepted"]
