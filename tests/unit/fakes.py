"""Stateful fakes for unit tests: an Outbox that records its frames, a Clock that steps predictably,
the parts of a websockets ServerConnection that the outbound path and the routing use, and a bus
that answers publishes when the test says."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from minimess.adapters.memory import MemoryBroker
from minimess.adapters.wire.server_frames import message_from_document
from minimess.domain.model import LogState, Message, Position, Topic
from minimess.domain.ports import Acknowledgement, Deliver, Room
from tests.timeouts import scaled
from tests.unit.wire import decode_server_frame


class RecordingOutbox:
    """An Outbox that keeps, in order, every frame pushed to it."""

    def __init__(self, name: str = "outbox", capacity: int = 10_000) -> None:
        self.name = name
        self.capacity = capacity
        self.frames: list[bytes] = []

    def push(self, frame: bytes) -> None:
        self.frames.append(frame)

    def room(self) -> Room:
        return Room(self.capacity - len(self.frames), 2**30 - sum(map(len, self.frames)))

    def documents(self) -> list[dict[str, Any]]:
        return [decode_server_frame(frame) for frame in self.frames]

    def messages(self) -> list[Message]:
        """The `message` frames received, read back into Messages (timestamps at ms precision)."""
        return [message_from_document(d) for d in self.documents() if d["type"] == "message"]

    def __repr__(self) -> str:
        return f"RecordingOutbox({self.name!r}, {len(self.frames)} frames)"


class SteppingClock:
    """A Clock that starts at a fixed UTC instant and moves one millisecond per reading."""

    def __init__(self, start: datetime = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)) -> None:
        self.current = start

    def now(self) -> datetime:
        moment = self.current
        self.current += timedelta(milliseconds=1)
        return moment


class FakeTransport:
    """A transport that keeps every write; `broken` makes write raise, like a bug would.

    `buffered` is what it reports as still in its write buffer; it is set by hand. `closed`: its
    socket is gone, and like uvloop's it refuses to change its limits then.
    """

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.written = asyncio.Event()
        self.broken = False
        self.buffered = 0
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes) -> None:
        if self.broken:
            raise RuntimeError("broken transport")
        self.writes.append(data)
        self.written.set()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        # asyncio's defaults for a socket transport: (low, high).
        return (16 * 1024, 64 * 1024)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.closed:
            raise RuntimeError("unable to perform operation on a closed transport")


class FakeProtocol:
    def __init__(self) -> None:
        self.state = State.OPEN


class FakeConnection:
    """What Outbound uses of a ServerConnection; `paused`, `drained` and the state are set by hand."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.protocol = FakeProtocol()
        self.paused = False
        self.transport = FakeTransport()
        self.drained = asyncio.Event()
        self.drained.set()

    async def drain(self) -> None:
        await self.drained.wait()


class HandshakeConnection:
    """The parts of a websockets ServerConnection that the routing of a handshake request uses."""

    def __init__(self, peer: str = "127.0.0.1") -> None:
        self.id = uuid.uuid4()
        self.remote_address = (peer, 40000)
        # Resolved by the test when "the TCP connection" closes.
        self.connection_lost_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def respond(self, status: int, text: str) -> Response:
        return ServerProtocol().reject(status, text)

    def lose(self) -> None:
        self.connection_lost_waiter.set_result(None)


class RecordingMetrics:
    """A Metrics port that keeps every event reported to it, in order, as (method, arguments)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []
        # Set whenever an event is recorded, for `reported`.
        self._recorded = asyncio.Event()

    def named(self, name: str) -> list[tuple[object, ...]]:
        return [arguments for method, arguments in self.events if method == name]

    async def reported(self, name: str, count: int = 1) -> list[tuple[object, ...]]:
        """The arguments of the events called `name`, once there are `count`; fails after a timeout."""
        async with asyncio.timeout(scaled(10)):
            while len(self.named(name)) < count:
                self._recorded.clear()
                await self._recorded.wait()
        return self.named(name)

    def _record(self, method: str, arguments: tuple[object, ...]) -> None:
        self.events.append((method, arguments))
        self._recorded.set()

    def connection_opened(self) -> None:
        self._record("connection_opened", ())

    def connection_closed(self, code: int, frames_dropped: int) -> None:
        self._record("connection_closed", (code, frames_dropped))

    def publish_answered(self, result: str, seconds: float) -> None:
        self._record("publish_answered", (result, seconds))

    def error_frame_sent(self, code: str) -> None:
        self._record("error_frame_sent", (code,))

    def slow_consumer_closed(self) -> None:
        self._record("slow_consumer_closed", ())

    def inactive_closed(self) -> None:
        self._record("inactive_closed", ())

    def internal_error(self) -> None:
        self._record("internal_error", ())

    def fanned_out(self, seconds: float) -> None:
        self._record("fanned_out", (seconds,))


class HeldBroker:
    """A memory bus that takes each message only when the test says: `hand_over` keeps it, in order,
    and `release(i)` puts the i-th on the bus and answers it (or `fail(i, error)` answers with an
    error), in whatever order the test picks. Its health is the memory broker's."""

    def __init__(self) -> None:
        self.bus = MemoryBroker()
        # Every message handed over, in order, with its acknowledgement.
        self.held: list[tuple[Message, Acknowledgement]] = []
        self._handed = asyncio.Event()
        # While set, `hand_over` waits for it to be done before taking the message, as aiokafka's
        # send waits for room or metadata: its result None lets it go on, an error makes it raise.
        self.taking: asyncio.Future[None] | None = None
        # Set once a hand-over waits on `taking`.
        self.waiting = asyncio.Event()

    def receiving(self, deliver: Deliver) -> AbstractAsyncContextManager[None]:
        return self.bus.receiving(deliver)

    async def hand_over(self, message: Message) -> Acknowledgement:
        if self.taking is not None:
            self.waiting.set()
            await self.taking
        acknowledgement: Acknowledgement = asyncio.get_running_loop().create_future()
        self.held.append((message, acknowledgement))
        self._handed.set()
        return acknowledgement

    async def publish(self, message: Message) -> Position:
        return await (await self.hand_over(message))

    async def handed(self, count: int) -> list[Message]:
        """The messages handed over, once there are at least `count`; fails after a timeout."""
        async with asyncio.timeout(scaled(10)):
            while len(self.held) < count:
                self._handed.clear()
                await self._handed.wait()
        return [message for message, _ in self.held]

    async def release(self, *indexes: int) -> None:
        """Put these messages on the bus in this order, and answer each with its position."""
        for index in indexes:
            message, acknowledgement = self.held[index]
            acknowledgement.set_result(await self.bus.publish(message))

    def fail(self, index: int, error: Exception) -> None:
        self.held[index][1].set_exception(error)

    def log(self, topic: Topic) -> LogState:
        return self.bus.log(topic)

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        return await self.bus.caught_up(topic, offset)

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        return await self.bus.replay(topic, after, upto)

    def is_ready(self) -> bool:
        return True

    def counters(self) -> Mapping[str, int]:
        return {}

    def lag(self) -> Mapping[int, int]:
        return {}
