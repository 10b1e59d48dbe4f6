"""The local channel's sequencer: numbers each topic's messages, sends each to every worker in one order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from minimess.adapters.local_channel import frames
from minimess.adapters.local_channel.streams import read_frames
from minimess.adapters.local_channel.turns import TurnWriter
from minimess.domain.errors import InvalidName
from minimess.domain.model import Topic

log = structlog.get_logger(__name__)

# Bytes a worker may have waiting in its socket's send buffer before it counts as too slow: it is
# then disconnected, its process drains and exits, and the supervisor starts it again.
SEND_BUFFER_BYTES = 64 * 2**20
# What the sequencer keeps of the latest messages, for a worker that joins (a restarted one) to
# start with: its history then answers recoveries of clients that reconnect to it.
RETAINED_BYTES = 32 * 2**20


class Sequencer:
    """Serves the channel on a Unix socket: every worker connected gets every message, in one order.

    One event loop does everything, so a message is written to every worker's stream in the same
    turn in which it is numbered: the order of the writes is the order of the log on every worker.
    The publisher's ack follows its message on its own stream, so it is delivered there first.
    """

    def __init__(self, path: Path, send_buffer_bytes: int = SEND_BUFFER_BYTES) -> None:
        self.path = path
        self._send_buffer_bytes = send_buffer_bytes
        # One epoch per sequencer, that is per supervisor start: positions stay valid on every worker.
        self.epoch = f"local-{uuid.uuid4().hex[:16]}"
        # The offset of each topic's last message.
        self._last: dict[str, int] = {}
        self._workers: set[TurnWriter] = set()
        # The latest message frames, oldest first, with their topic and offset, bounded in bytes.
        self._retained: deque[tuple[str, int, bytes]] = deque()
        self._retained_bytes = 0
        self._names = itertools.count()
        self.messages = 0
        self.disconnected_slow = 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Listen on the socket's path while the block runs."""
        self.path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._serve_worker, path=str(self.path))
        try:
            yield
        finally:
            server.close()
            for worker in list(self._workers):
                worker.writer.close()
            await server.wait_closed()
            self.path.unlink(missing_ok=True)

    async def _serve_worker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = f"worker-connection-{next(self._names)}"
        self._welcome(writer)
        worker = TurnWriter(writer)
        self._workers.add(worker)
        log.info("channel_worker_joined", peer=name, workers=len(self._workers))
        try:
            async for kind, payload in read_frames(reader, name):
                if kind == frames.PUBLISH:
                    self._publish(worker, payload, name)
                else:
                    log.warning("channel_frame_skipped", peer=name, reason=f"unexpected kind {kind!r}")
        except frames.BrokenStream as error:
            log.warning("channel_worker_dropped", peer=name, reason=str(error))
        except ConnectionError:
            pass
        finally:
            self._workers.discard(worker)
            writer.close()
            log.info("channel_worker_left", peer=name, workers=len(self._workers))

    def _welcome(self, writer: asyncio.StreamWriter) -> None:
        """The epoch, where this worker starts each topic's log, then the retained messages in order."""
        writer.write(frames.frame(frames.WELCOME, {"epoch": self.epoch}))
        starts = {topic: last + 1 for topic, last in self._last.items()}
        for topic, offset, _ in self._retained:
            starts[topic] = min(starts[topic], offset)
        for topic, first in starts.items():
            writer.write(frames.frame(frames.START, {"topic": topic, "first": first}))
        writer.writelines(message for _, _, message in self._retained)

    def _publish(self, origin: TurnWriter, payload: dict[str, Any], name: str) -> None:
        try:
            request = frames.field(payload, "request", int)
            message = frames.field(payload, "message", dict)
            topic = Topic(frames.field(message, "topic", str)).name
        except (frames.BadFrame, InvalidName) as error:
            log.warning("channel_frame_skipped", peer=name, reason=str(error)[:200])
            return
        offset = self._last[topic] = self._last.get(topic, -1) + 1
        encoded = frames.frame(frames.MESSAGE, {**message, "offset": offset})
        self.messages += 1
        self._retain(topic, offset, encoded)
        for worker in list(self._workers):
            worker.write(encoded)
            if worker.queued_bytes > self._send_buffer_bytes:
                self._drop_slow(worker)
        if origin in self._workers:
            origin.write(frames.frame(frames.ACK, {"request": request, "offset": offset}))

    def _retain(self, topic: str, offset: int, encoded: bytes) -> None:
        self._retained.append((topic, offset, encoded))
        self._retained_bytes += len(encoded)
        while self._retained_bytes > RETAINED_BYTES:
            self._retained_bytes -= len(self._retained.popleft()[2])

    def _drop_slow(self, worker: TurnWriter) -> None:
        """A worker that does not keep up is cut off: its process drains its clients and is restarted."""
        self._workers.discard(worker)
        self.disconnected_slow += 1
        log.warning("channel_worker_too_slow", queued_bytes=worker.queued_bytes)
        worker.writer.transport.abort()
