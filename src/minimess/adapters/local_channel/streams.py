"""Reading the local channel's frames off an asyncio stream, skipping the ones that cannot be trusted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from minimess.adapters.local_channel import frames

log = structlog.get_logger(__name__)


async def read_frames(
    reader: asyncio.StreamReader, peer: str, skipped: Callable[[], None] | None = None
) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
    """Each sound frame's kind and payload until the stream ends.

    A frame that is not JSON is logged and skipped (and `skipped` called); a length out of bounds
    raises BrokenStream (nothing after it can be framed). The end of the stream, even in the middle
    of a frame, ends the iteration.
    """
    while True:
        try:
            header = await reader.readexactly(frames.HEADER.size)
            body = await reader.readexactly(frames.frame_length(header))
        except asyncio.IncompleteReadError:
            return
        try:
            yield frames.split(body)
        except frames.BadFrame as error:
            log.warning("channel_frame_skipped", peer=peer, reason=str(error))
            if skipped is not None:
                skipped()
