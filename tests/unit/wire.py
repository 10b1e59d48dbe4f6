"""The wire seen from the client's side: a server frame decoded as a client decodes it."""

from __future__ import annotations

import json
from typing import Any

from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader


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
    # Not reader.at_eof(): a generator-based coroutine, which is always true as a value.
    assert not reader.buffer, f"bytes left over after one frame in {data!r}"
    document = json.loads(bytes(frame.data).decode())
    assert isinstance(document, dict), document
    return document
