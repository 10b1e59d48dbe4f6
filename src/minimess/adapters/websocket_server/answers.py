"""The answers a connection owes its client, given in the order of the frames they answer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from minimess.app.publishing import Publishing

Answer = Callable[[], None]
"""Pushes the answer to one frame (ack, error, ...) to the connection's outbound path."""


class Answers:
    """A connection's window of publishes in flight, and every answer queued behind them.

    A publish is answered once the bus has answered it and everything read before it was
    answered; an answer that is ready when nothing is owed goes out at once. No task: the bus's
    answers call back. The window is bounded in frames and bytes (the frame that crosses the byte
    bound is still taken): while it is full the reader waits for `room` and reads nothing more,
    so a client that publishes faster than the bus answers is held back by TCP, never dropped.
    """

    def __init__(self, frames: int, max_bytes: int, failed: Callable[[BaseException], None]) -> None:
        self._max_frames = frames
        self._max_bytes = max_bytes
        # Told of an answer that raised (a bug): the connection closes with 1011.
        self._failed = failed
        # In frame order: the publish awaited (None: the answer is ready), the answer, its bytes.
        self._owed: deque[tuple[Publishing | None, Answer, int]] = deque()
        self._bytes = 0
        # Answers given since the connection opened; `settled` counts up to its mark.
        self._given = 0
        # Set when an answer is given or the window closes, for the waiters of room and settled.
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def owed(self) -> int:
        """Frames read that are not answered yet."""
        return len(self._owed)

    def has_room(self) -> bool:
        return len(self._owed) < self._max_frames and self._bytes < self._max_bytes

    async def room(self) -> None:
        """Return once the window takes one more frame, or is closed."""
        while not self._closed and not self.has_room():
            self._changed.clear()
            await self._changed.wait()

    def settled(self) -> Coroutine[Any, Any, None]:
        """Return once every frame owed at the call is answered, or the window is closed."""
        return self._given_up_to(self._given + len(self._owed))

    async def _given_up_to(self, mark: int) -> None:
        while not self._closed and self._given < mark:
            self._changed.clear()
            await self._changed.wait()

    def give(self, answer: Answer, size: int) -> None:
        """Answer a frame (`size` bytes) now, or after the frames before it if any are owed."""
        if not self._owed:
            self._answer(answer)
            return
        self._owed.append((None, answer, size))
        self._bytes += size

    def owe(self, publishing: Publishing, answer: Answer, size: int) -> None:
        """Answer a publish (`size` bytes) once its outcome is known and the frames before it are answered."""
        if not self._owed and publishing.done():
            self._answer(answer)
            return
        self._owed.append((publishing, answer, size))
        self._bytes += size
        if not publishing.done():
            publishing.when_done(self._flush)

    def close(self) -> None:
        """Answer nothing more: the connection is gone. The bus's answers to come are dropped."""
        self._closed = True
        for publishing, _, _ in self._owed:
            if publishing is not None:
                publishing.abandon()
        self._owed.clear()
        self._bytes = 0
        self._changed.set()

    def _flush(self, answered: Publishing) -> None:
        """Give every answer at the head of the window that is ready, in order."""
        owed = self._owed
        given = self._given
        while owed and ((head := owed[0][0]) is None or head.done()):
            _, answer, size = owed.popleft()
            self._bytes -= size
            self._answer(answer)
        if self._given != given:
            self._changed.set()

    def _answer(self, answer: Answer) -> None:
        self._given += 1
        try:
            answer()
        except Exception as error:
            # A bug in one answer must not stop the others, nor be lost in the event loop's log.
            self._failed(error)
