"""The outbound path of connections: frames collected per turn, written at its end or by a writer."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.wire import batched_frames
from minimess.domain.metrics import Metrics
from minimess.domain.ports import Frame, Room

log = structlog.get_logger(__name__)


class Stamps(Protocol):
    """Marks put on frames as they pass (--trace); a server without them runs no such code."""

    def queued(self, frame: Frame) -> Frame: ...
    def written(self, frames: list[Frame]) -> list[Frame]: ...


class Flusher:
    """Ends every turn of the event loop in which frames were sent: writes what was collected.

    One server-wide callback per turn, never one per delivery. A connection's first frame in a
    turn goes straight to its socket; frames that follow it in the same turn (a flood of
    publishes, a burst from the broker) are collected and written together when the turn ends,
    in one write, which is one system call. Nothing waits for a timer, as with Nagle's algorithm:
    the turn ends as soon as the code that pushed the frames returns to the event loop.

    With `direct_writes` off, no frame goes straight to a socket: every one waits for its
    connection's writer task (what the direct writes save is measured by benchmarks.variants).

    With `metrics`, it times the fan-out of each message from the bus (`fan_out_started`) to the
    end of the turn that wrote its frames: one clock reading per message, and the observations
    made once the turn's writes are done. A frame that a socket pushing back had to queue leaves
    later, through its connection's writer; the figure does not wait for it.
    """

    def __init__(self, direct_writes: bool = True, metrics: Metrics | None = None) -> None:
        self.direct_writes = direct_writes
        self._metrics = metrics
        # When each message fanned out in this turn came from the bus (perf_counter), if timed.
        self._fan_outs: list[float] = []
        # Counts ended turns; an outbound compares it with the turn of its last direct write.
        self.turn = 0
        # The outbounds with collected frames, each once, in the order they got their first.
        self._pending: list[Outbound] = []
        self._scheduled = False

    def end_turn_later(self) -> None:
        """Make sure this turn ends with a flush (so that `turn` moves on)."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._end_turn)

    def fan_out_started(self) -> None:
        """A message from the bus is about to be pushed to local subscribers: time it to this turn's end."""
        if self._metrics is not None:
            self._fan_outs.append(time.perf_counter())
            self.end_turn_later()

    def schedule(self, outbound: Outbound) -> None:
        """Flush `outbound` when this turn ends."""
        self._pending.append(outbound)
        self.end_turn_later()

    def _end_turn(self) -> None:
        self._scheduled = False
        self.turn += 1
        pending, self._pending = self._pending, []
        fan_outs, self._fan_outs = self._fan_outs, []
        for outbound in pending:
            try:
                outbound.flush()
            except Exception:
                # One broken connection must not keep the frames of the others from their sockets.
                log.exception("flush_failed", connection_id=outbound.connection_id)
        if fan_outs and self._metrics is not None:
            written = time.perf_counter()
            for started in fan_outs:
                self._metrics.fanned_out(written - started)


class Outbound:
    """Delivers pre-encoded frames to one connection, in order, without ever blocking the caller.

    Waking a task for every delivery costs about twice as much as the delivery itself, so
    `push` writes a connection's first frame of a turn straight to an idle socket, and collects
    the frames that follow it in the same turn for the server-wide Flusher, which writes them
    together when the turn ends. Only when the socket pushes back (its write buffer is over the
    high-water mark) or frames are already queued do frames go to the bounded queue, which a
    writer task drains in one write. The queue and its writer exist only while frames wait, and
    the writer ends once it has handed the queue to the socket: an idle connection holds
    neither (see docs/performance.md, idle memory). Collected and queued frames together are
    bounded by `queue_size`, and everything pending for the client by `queue_bytes`: the bytes collected,
    queued and held by the writer, and those the socket's write buffer still holds (a frame is
    taken while the total is under the bound, so it never exceeds it by more than one frame).
    Past either bound the client does not keep up, `on_overflow` is called once and every later
    frame is dropped, so a slow consumer never delays the publisher or anyone else, and never
    holds more of the server's memory than the bound.

    Frames are whole unmasked WebSocket frames and bypass the websockets protocol object on
    purpose: server frames are not masked and compression is off, so the bytes encoded once
    per message are exactly what the protocol object would produce for every connection.

    With `batch` (the client's subprotocol is minimess.batch), the frames of one write go out as
    one frame, their texts a line each, or as few as hold 64 KiB of text each
    (adapters/wire/batched_frames.py): a client under a flood then reads a frame for many messages
    rather than one for each.

    With `stamps` (--trace), each frame is stamped when pushed and when handed to the socket.
    When the server shuts down, `drain` hands everything held to the socket before the close.
    """

    def __init__(
        self,
        connection: ServerConnection,
        queue_size: int,
        on_overflow: Callable[[], None],
        flusher: Flusher | None = None,
        stamps: Stamps | None = None,
        *,
        queue_bytes: int,
        on_error: Callable[[Exception], None] | None = None,
        batch: bool = False,
    ) -> None:
        self._connection = connection
        # The client asked for batched frames (subprotocol minimess.batch): frames written
        # together go out as one frame, their texts a line each (as few frames as the bound allows).
        self._batch = batch
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        # Frames pushed in this turn of the event loop after a direct write, written at its end.
        self._collected: list[Frame] = []
        self._flusher = flusher if flusher is not None else Flusher()
        # The flusher's turn in which this connection last wrote directly; -1: never.
        self._direct_turn = -1
        # Frames waiting for the socket to take more; bounded (with the collected ones). Made
        # when a frame first waits, dropped when the writer has emptied it.
        self._queue: deque[Frame] | None = None
        # The task draining the queue, only while it holds frames.
        self._writer: asyncio.Task[None] | None = None
        # Bytes of the collected frames, and of the queued ones with the batch the writer holds:
        # kept with integer adds as frames move, so that no push ever sums a list.
        self._collected_bytes = 0
        self._queued_bytes = 0
        # What the bounds left for the frames collected in this turn, read when the first was.
        self._frames_left = queue_size
        self._bytes_left = queue_bytes
        # True while the writer holds frames it took from the queue but has not written yet,
        # so that a flush cannot overtake them.
        self._writer_busy = False
        # Set once the connection stops taking frames (overflowed, closing, or closed).
        self._stopped = False
        # Set when the writer has written a batch, or when it or the outbound stops: what
        # `drain` waits for while the writer holds frames. Made when first waited for.
        self._progress: asyncio.Event | None = None
        self._on_overflow = on_overflow
        # Told of a bug met by the writer, which runs as a task of its own.
        self._on_error = on_error
        # --trace: stamp frames; without it, one check per push is all it costs.
        self._stamps = stamps
        # Frames that will never reach the socket: refused once the connection stopped taking them
        # (overflowed, or closing), or collected in the turn in which it stopped.
        self.dropped = 0

    def push(self, frame: Frame) -> None:
        if self._stopped:
            self.dropped += 1
            return
        connection = self._connection
        if connection.protocol.state is not State.OPEN:
            self._stopped = True
            self.dropped += 1
            return
        collected = self._collected
        flusher = self._flusher
        if (
            self._direct_turn != flusher.turn
            and not collected
            and not connection.paused
            and not self._writer_busy
            and not self._queue
            and flusher.direct_writes
        ):
            # The first frame of this turn, and nothing ahead of it: to the socket at once.
            self._direct_turn = flusher.turn
            flusher.end_turn_later()
            if self._stamps is not None:
                frame = self._stamps.written([self._stamps.queued(frame)])[0]
            connection.transport.write(frame)
            return
        if collected:
            if len(collected) >= self._frames_left or self._collected_bytes >= self._bytes_left:
                self._overflow()
                return
        else:
            # The first frame collected in this turn: what the bounds leave is read once, here,
            # and every later frame of the turn is counted against it with integer compares.
            # Within a turn the socket's buffer only shrinks (the writer moves bytes from the
            # queue into it, which leaves the total as it was), so the figure errs on the safe side.
            # A direct write needs nothing held and a socket that does not push back, so its
            # buffer is under websockets' high-water mark (32 KiB): it is left out of the count.
            self._frames_left = self._queue_size - self._queue_length()
            self._bytes_left = (
                self._queue_bytes - self._queued_bytes - connection.transport.get_write_buffer_size()
            )
            if self._frames_left <= 0 or self._bytes_left <= 0:
                self._overflow()
                return
            flusher.schedule(self)
        if self._stamps is not None:
            frame = self._stamps.queued(frame)
        collected.append(frame)
        self._collected_bytes += len(frame)

    def _overflow(self) -> None:
        self._stopped = True
        self.dropped += 1
        self._made_progress()
        self._on_overflow()

    def flush(self) -> None:
        """Hand this turn's frames to the socket in one write, or to the writer if it is busy."""
        frames, self._collected = self._collected, []
        size, self._collected_bytes = self._collected_bytes, 0
        connection = self._connection
        if not frames:
            return  # flushed early by a caller; the scheduled flush finds nothing left
        if self._stopped or connection.protocol.state is not State.OPEN:
            # Closing: the close frame may already be out, and no data may follow it.
            self.dropped += len(frames)
            return
        if connection.paused or self._writer_busy or self._queue or not self._flusher.direct_writes:
            # Never over the bound: push counted the collected frames against it.
            if self._queue is None:
                self._queue = deque(frames)
            else:
                self._queue.extend(frames)
            self._queued_bytes += size
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_queued())
            return
        if self._stamps is not None:
            frames = self._stamps.written(frames)
        if len(frames) == 1:
            connection.transport.write(frames[0])
        else:
            connection.transport.write(batched_frames.batched(frames) if self._batch else b"".join(frames))

    async def _write_queued(self) -> None:
        """Drain queued frames to the socket, several at a time, as it takes them; end when none wait."""
        connection = self._connection
        queue = self._queue
        assert queue is not None  # made before the writer
        ended = False
        try:
            while queue:
                # Held by the writer from here: a flush must not overtake it.
                first = queue.popleft()
                self._writer_busy = True
                try:
                    # Wait until the socket's buffer is under the low-water mark again.
                    try:
                        await connection.drain()
                    except OSError:
                        ended = True
                        return  # the connection is gone; the reader reports it
                    if connection.protocol.state is not State.OPEN:
                        ended = True
                        return
                    frames = [first, *queue]
                    queue.clear()
                    if self._stamps is not None:
                        frames = self._stamps.written(frames)
                    connection.transport.write(
                        batched_frames.batched(frames) if self._batch else b"".join(frames)
                    )
                    # No await since the queue was emptied: every queued byte is the socket's now.
                    self._queued_bytes = 0
                finally:
                    self._writer_busy = False
                    self._made_progress()
            self._queue = None
        except Exception as error:
            ended = True
            if self._on_error is None:
                raise
            self._on_error(error)
        except BaseException:
            ended = True
            raise
        finally:
            self._writer = None
            if ended:
                # Nothing queued can reach the socket without the writer, in order or at all.
                self._stopped = True
                self._made_progress()

    async def close(self) -> None:
        """Stop taking frames, and end the writer if it runs: the connection is over."""
        self._stopped = True
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._made_progress()

    def _queue_length(self) -> int:
        return 0 if self._queue is None else len(self._queue)

    def _made_progress(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _progressed(self) -> None:
        """Wait until the writer has written a batch, or it or the outbound stopped."""
        if self._progress is None:
            self._progress = asyncio.Event()
        self._progress.clear()
        await self._progress.wait()

    async def drain(self) -> None:
        """Hand every frame held to the socket; return once the socket's write buffer is empty too.

        Frames pushed meanwhile go out as well, so that when it returns, nothing is held and a
        close frame written next follows every data frame. It returns at once when the outbound
        stops (overflowed, closing, or its writer ended): nothing it holds will go out then.
        """
        connection = self._connection
        if connection.transport.is_closing():
            return  # nothing can go out; uvloop refuses any call on a closed transport
        # From now on the socket pushes back while anything at all is in its buffer, so that
        # waiting for it to take more waits until it has taken everything.
        connection.transport.set_write_buffer_limits(high=0)
        while not self._stopped and connection.protocol.state is State.OPEN:
            self.flush()
            if self._writer_busy or self._queue:
                await self._progressed()
            elif connection.transport.get_write_buffer_size() > 0:
                try:
                    await connection.drain()
                except OSError:
                    return  # the connection is gone; the reader reports it
            else:
                return

    async def emptied(self) -> None:
        """Return once every frame held has been handed to the socket (or the outbound stopped).

        Unlike `drain`, the socket's own buffer is left to fill and empty as it does.
        """
        while not self._stopped and self._connection.protocol.state is State.OPEN:
            self.flush()
            if not (self._writer_busy or self._queue):
                return
            await self._progressed()

    def room(self) -> Room:
        """What `push` takes now before this connection is a slow consumer (one frame may go direct)."""
        if self._stopped:
            return Room(0, 0)
        return Room(
            frames=max(0, self._queue_size - self.queued - 1),
            bytes=max(0, self._queue_bytes - self.pending_bytes),
        )

    @property
    def connection_id(self) -> str:
        """The id of the connection this outbound writes to, for log lines."""
        return connection_id(self._connection)

    @property
    def writing(self) -> bool:
        """Whether a writer task runs: only while frames wait for the socket."""
        return self._writer is not None

    @property
    def queued(self) -> int:
        """Frames held and not handed to the socket yet, the one the writer waits to write included."""
        return len(self._collected) + self._queue_length() + int(self._writer_busy)

    @property
    def pending_bytes(self) -> int:
        """Bytes held and not handed to the socket yet, and those still in the socket's write buffer."""
        buffered = self._connection.transport.get_write_buffer_size()
        return self._collected_bytes + self._queued_bytes + buffered
