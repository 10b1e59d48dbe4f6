"""What one turn of the event loop writes to a channel stream, sent at the end of the turn in one write."""

from __future__ import annotations

import asyncio


class TurnWriter:
    """Collects a turn's frames for one stream and writes them together when the turn ends.

    Under load a burst of publishes then crosses the channel as one chunk, is read by each worker
    in one turn and fanned out in one, so that each subscriber gets the burst in one socket write,
    as it does on the memory bus; frame by frame, every message would cost every subscriber a write.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._pending: list[bytes] = []
        # Bytes collected this turn, not yet handed to the stream.
        self.pending_bytes = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(data)
        self.pending_bytes += len(data)

    def flush(self) -> None:
        """Hand what this turn collected to the stream (dropped when it is closing: nothing reads it)."""
        if self._pending and not self.writer.is_closing():
            self.writer.write(b"".join(self._pending))
        self._pending.clear()
        self.pending_bytes = 0

    @property
    def queued_bytes(self) -> int:
        """What waits to be sent: this turn's frames and the stream's write buffer."""
        return self.pending_bytes + self.writer.transport.get_write_buffer_size()
