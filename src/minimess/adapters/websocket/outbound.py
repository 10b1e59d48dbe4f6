"""The outbound path of one connection: frames go straight to an idle socket, else to a writer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from minimess.adapters.websocket.codec import now_us, stamp_queued, stamp_written
from minimess.domain.ports import Frame


class Outbound:
    """Delivers pre-encoded frames to one connection, in order, without ever blocking the caller.

    Waking a task for every delivery costs about as much as the delivery itself, so `push`
    writes a frame straight to the socket when nothing is waiting ahead of it. Only when the
    socket pushes back (its write buffer is over the high-water mark) or frames are already
    queued does a frame go to the bounded queue, which the writer task drains in one write.
    A full queue means the client does not keep up: `on_overflow` is called once and every
    later frame is dropped, so a slow consumer never delays the publisher or anyone else.

    Frames are whole unmasked WebSocket frames and bypass the websockets protocol object on
    purpose: server frames are not masked and compression is off, so the bytes encoded once
    per message are exactly what the protocol object would produce for every connection.

    With `trace` (--trace), each traced message frame gets this connection's `queued` time when
    pushed and its `written` time when handed to the socket; other frames pass unchanged.
    """

    def __init__(
        self,
        connection: ServerConnection,
        queue_size: int,
        on_overflow: Callable[[], None],
        trace: bool = False,
    ) -> None:
        self._connection = connection
        # Frames waiting for the socket; bounded, and full means slow consumer.
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=queue_size)
        # True while the writer holds frames it took from the queue but has not written yet,
        # so that push cannot overtake them.
        self._writer_busy = False
        # Set once the connection stops taking frames (overflowed or closing).
        self._stopped = False
        self._on_overflow = on_overflow
        # --trace: stamp traced message frames; without it, one check per push is all it costs.
        self._trace = trace

    def push(self, frame: Frame) -> None:
        if self._stopped:
            return
        connection = self._connection
        if connection.protocol.state is not State.OPEN:
            self._stopped = True
            return
        if not connection.paused and not self._writer_busy and self._queue.empty():
            if self._trace:
                # Queued and written in the same instant: nothing runs between the two.
                now = now_us()
                frame = stamp_written(stamp_queued(frame, now), now)
            connection.transport.write(frame)
            return
        if self._trace:
            frame = stamp_queued(frame, now_us())
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._stopped = True
            self._on_overflow()

    async def run_writer(self) -> None:
        """Drain queued frames to the socket, several at a time, as fast as it takes them."""
        connection = self._connection
        while True:
            first = await self._queue.get()
            self._writer_busy = True
            try:
                # Wait until the socket's buffer is under the low-water mark again.
                try:
                    await connection.drain()
                except OSError:
                    return  # the connection is gone; the reader reports it
                if connection.protocol.state is not State.OPEN:
                    return
                frames = [first]
                while not self._queue.empty():
                    frames.append(self._queue.get_nowait())
                if self._trace:
                    now = now_us()
                    frames = [stamp_written(frame, now) for frame in frames]
                connection.transport.write(b"".join(frames))
            finally:
                self._writer_busy = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()
