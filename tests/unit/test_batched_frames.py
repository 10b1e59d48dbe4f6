"""Batched frames: consecutive text frames as few, a text a line, read back as a client reads them."""

from __future__ import annotations

import json
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

from minimess.adapters.websocket_server.server import batch_if_offered
from minimess.adapters.wire import batched_frames
from minimess.adapters.wire.batched_frames import MAX_TEXT_BYTES, batched
from minimess.adapters.wire.server_frames import payload, text_frame


def read_frames(data: bytes) -> list[Frame]:
    """Every whole unmasked frame in `data`, parsed as a websockets client parses them."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
        else:
            raise AssertionError("an incomplete frame")
    return frames


def documents(frames: list[Frame]) -> list[object]:
    """What a client of minimess.batch reads: each frame split at its newlines, each line a document."""
    return [json.loads(line) for frame in frames for line in bytes(frame.data).decode().split("\n")]


# JSON bodies of every length class of a frame header (under 126, under 65536, over), with the
# characters a split at newlines must survive: escaped newlines, U+2028, non-ASCII.
BODIES = st.one_of(
    st.text(max_size=200),
    st.integers(min_value=100, max_value=70000).map(lambda size: "a\n\u2028é" * (size // 6)),
)


@given(st.lists(BODIES, min_size=1, max_size=8))
def test_a_client_reads_back_every_document_in_order(bodies: list[str]) -> None:
    sent = [{"type": "message", "body": body} for body in bodies]
    frames = read_frames(batched([text_frame(payload(document)) for document in sent]))
    assert all(frame.opcode is Opcode.TEXT and frame.fin for frame in frames)
    assert documents(frames) == sent
    for frame in frames:
        # Full batches only: a frame over the bound holds one document alone.
        assert len(frame.data) <= MAX_TEXT_BYTES or b"\n" not in frame.data


def test_consecutive_texts_share_a_frame_up_to_the_bound() -> None:
    shorter, longer = b"x" * (MAX_TEXT_BYTES // 2 - 1), b"y" * (MAX_TEXT_BYTES // 2)
    # A text, a newline and a text one byte longer fill a frame exactly (65,536 bytes, a 64-bit
    # length); one byte more and the second text starts the next frame.
    frames = read_frames(batched([text_frame(shorter), text_frame(longer)] * 2 + [text_frame(longer)] * 2))
    assert [frame.data for frame in frames] == [shorter + b"\n" + longer] * 2 + [longer, longer]
    assert len(frames[0].data) == MAX_TEXT_BYTES


@pytest.mark.parametrize("size", [125, 126, 127, 65535, 65536])
def test_a_batch_of_each_length_class_of_the_header_reads_back(size: int) -> None:
    """Joined texts of `size` bytes: the header's 7-bit, 16-bit and 64-bit lengths at their edges."""
    first = b"a" * (size // 2)
    second = b"b" * (size - len(first) - 1)
    data = batched([text_frame(first), text_frame(second)])
    (frame,) = read_frames(data)
    assert frame.data == first + b"\n" + second
    assert data == text_frame(first + b"\n" + second)


def test_texts_one_byte_over_the_bound_go_in_two_frames() -> None:
    first, second = b"a" * (MAX_TEXT_BYTES // 2), b"b" * (MAX_TEXT_BYTES // 2)
    frames = read_frames(batched([text_frame(first), text_frame(second)]))
    assert [frame.data for frame in frames] == [first, second]


def test_a_frame_that_is_not_text_goes_as_it_is_in_its_place() -> None:
    ping = b"\x89\x00"
    first, second, third = (text_frame(f'{{"n":{n}}}'.encode()) for n in range(3))
    data = batched([first, second, ping, third])
    assert data == text_frame(b'{"n":0}\n{"n":1}') + ping + third
    assert batched_frames.text_of(ping) is None


def test_a_masked_frame_is_not_taken_for_a_text() -> None:
    """No server writes one; were one pushed, it would still go out whole, not as a line."""
    masked = b"\x81\x85" + bytes(4) + b"hello"
    text = text_frame(b"text")
    assert batched([text, masked, text]) == text + masked + text


def test_one_frame_is_written_unchanged() -> None:
    frame = text_frame(b'{"type":"time"}')
    assert batched([frame]) == frame


def test_the_server_answers_minimess_batch_when_offered_among_others_and_nothing_otherwise() -> None:
    connection = cast(ServerConnection, None)
    assert (
        batch_if_offered(connection, [Subprotocol("chat"), Subprotocol("minimess.batch")]) == "minimess.batch"
    )
    assert batch_if_offered(connection, [Subprotocol("chat")]) is None
    assert batch_if_offered(connection, []) is None


def test_only_a_whole_frame_has_a_text() -> None:
    """Its header, then as many bytes as the header says: not two frames, nor a part of one."""
    long = text_frame(b"x" * 200)
    text = batched_frames.text_of(long)
    assert text is not None
    assert bytes(text) == b"x" * 200
    assert batched_frames.text_of(long[:-1]) is None
    assert batched_frames.text_of(long + b"!") is None
    assert batched_frames.text_of(text_frame(b"x") + text_frame(b"y")) is None
