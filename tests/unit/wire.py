"""The wire seen from the client's side: server frames decoded, and the replies a frame gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from minimess.adapters.websocket import codec
from minimess.domain.model import Message, Uid


def decode_server_frame(data: bytes) -> dict[str, Any]:
    """Parse one whole unmasked WebSocket text frame, as a client would, into its JSON document."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WireFrame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: WireFrame = done.value
    else:
        raise AssertionError(f"incomplete WebSocket frame: {data!r}")
    assert frame.fin, "server frames are never fragmented"
    assert frame.opcode is Opcode.TEXT, frame.opcode
    assert reader.at_eof(), f"bytes left over after one frame in {data!r}"
    document = json.loads(bytes(frame.data).decode())
    assert isinstance(document, dict), document
    return document


def replies_to(data: str | bytes) -> list[dict[str, Any]]:
    """The frames the server encodes in answer to one client frame, decoded (broker and hub aside).

    An accepted pub is encoded as a message frame and acknowledged; an accepted sub or unsub is
    confirmed; a rejected frame gets an error frame.
    """
    try:
        frame = codec.parse_client_frame(data)
    except codec.FrameError as error:
        return [decode_server_frame(codec.error_frame(error.code, error.reason, error.ref))]
    if isinstance(frame, codec.Sub):
        return [decode_server_frame(codec.subscribed_frame(frame.topic))]
    if isinstance(frame, codec.Unsub):
        return [decode_server_frame(codec.unsubscribed_frame(frame.topic))]
    message = Message.create(frame.topic, Uid("client"), frame.body, datetime.now(UTC))
    return [
        decode_server_frame(codec.message_frame(message)),
        decode_server_frame(codec.ack_frame(frame.ref, message.id)),
    ]
