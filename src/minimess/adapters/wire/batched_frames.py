"""Batched frames (subprotocol `minimess.batch`): whole text frames written as fewer, a text a line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from minimess.adapters.wire.server_frames import text_header

SUBPROTOCOL: Final = "minimess.batch"
"""What a client offers in Sec-WebSocket-Protocol to take several documents in one frame."""

MAX_TEXT_BYTES: Final = 65536
"""The text of a batched frame, at most: what follows is in the next frame (a longer document goes
alone, as it would without batching)."""

_TEXT_FIN: Final = 0x81
# Where the text of a whole unmasked frame starts, by its second byte (RFC 6455 5.2: the length in
# 7 bits, or 126 and 16 bits, or 127 and 64 bits).
_TEXT_START: Final = bytes(2 if length < 126 else 4 if length == 126 else 10 for length in range(128))


def text_of(frame: bytes) -> memoryview | None:
    """The text of `frame` if it is one whole unmasked text frame (text_frame's: its header, then
    as many bytes as the header says, and nothing more), else None."""
    if len(frame) < 2 or frame[0] != _TEXT_FIN or frame[1] & 0x80:
        return None
    start = _TEXT_START[frame[1]]
    declared = frame[1] if start == 2 else int.from_bytes(frame[2:start], "big")
    if len(frame) != start + declared:
        return None
    return memoryview(frame)[start:]


def batched(frames: Sequence[bytes]) -> bytes:
    """`frames`, in order, as few text frames: each holds the texts of consecutive frames joined by
    a newline, up to MAX_TEXT_BYTES of text.

    The server's JSON holds no raw newline (no whitespace between tokens, and a newline in a
    string is escaped), so a client splits a frame at its newlines to get the documents back.
    Each of `frames` is one whole frame, as every frame an Outbound holds is; one that is not a
    text frame goes out as it is, in its place.
    """
    # The usual write: text frames whose texts fit in one frame, sliced and joined in a few steps
    # that run in C (a third of the cost of the walk below, which a write rarely needs).
    if sum(map(len, frames)) <= MAX_TEXT_BYTES:
        texts = [
            frame[_TEXT_START[frame[1]] :] for frame in frames if frame[0] == _TEXT_FIN and frame[1] < 0x80
        ]
        if len(texts) == len(frames):
            joined = b"\n".join(texts)
            return text_header(len(joined)) + joined
    return _batched_walk(frames)


def _batched_walk(frames: Sequence[bytes]) -> bytes:
    """batched(), for any frames: a batch ends at the bound or at a frame that is not text. The
    bytes are copied once, in the final join."""
    parts: list[bytes | memoryview] = []
    header_at = 0  # where in `parts` the open batch's header goes
    size = -1  # bytes of text in the open batch; -1: none open
    for frame in frames:
        text = text_of(frame)
        if size >= 0 and (text is None or size + 1 + len(text) > MAX_TEXT_BYTES):
            parts[header_at] = text_header(size)
            size = -1
        if text is None:
            parts.append(frame)
        elif size < 0:
            header_at = len(parts)
            parts += (b"", text)
            size = len(text)
        else:
            parts += (b"\n", text)
            size += 1 + len(text)
    if size >= 0:
        parts[header_at] = text_header(size)
    return b"".join(parts)
