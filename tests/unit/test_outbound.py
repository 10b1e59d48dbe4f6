"""The outbound path: frames pushed in one turn of the event loop leave in one write, in order, bounded."""

from __future__ import annotations

import asyncio
from typing import cast

from structlog.testing import capture_logs
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from minimess.adapters.websocket.codec import text_frame
from minimess.adapters.websocket.outbound import Flusher, Outbound
from tests.timeouts import scaled
from tests.unit.fakes import FakeConnection

QUEUE_SIZE = 4


class Overflows:
    """Counts on_overflow calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def frames(count: int) -> list[bytes]:
    return [text_frame(f"frame {number}".encode()) for number in range(count)]


def outbound_for(
    connection: FakeConnection, flusher: Flusher, overflows: Overflows | None = None
) -> Outbound:
    return Outbound(cast(ServerConnection, connection), QUEUE_SIZE, overflows or Overflows(), flusher)


async def next_turn() -> None:
    """Let the loop run the callbacks already scheduled, the flusher's end of turn among them.

    Deterministic: asyncio runs callbacks in the order they were scheduled, and this task's
    resumption is scheduled after the flusher's callback.
    """
    await asyncio.sleep(0)


async def next_write(connection: FakeConnection) -> None:
    async with asyncio.timeout(scaled(5)):
        await connection.transport.written.wait()
    connection.transport.written.clear()


async def test_the_first_frame_of_a_turn_goes_at_once_and_the_rest_in_one_write_at_its_end() -> None:
    """Four pushes in one turn: the first is written during push, the other three together after."""
    connection = FakeConnection()
    outbound = outbound_for(connection, Flusher())
    first, *rest = frames(4)
    outbound.push(first)
    assert connection.transport.writes == [first]
    for frame in rest:
        outbound.push(frame)
    assert connection.transport.writes == [first]
    assert outbound.queued == 3
    await next_turn()
    assert connection.transport.writes == [first, b"".join(rest)]
    assert outbound.queued == 0


async def test_a_frame_per_turn_is_written_at_once_every_time() -> None:
    """At a steady chat rate every frame is the first of its turn: each is written during its push."""
    connection = FakeConnection()
    outbound = outbound_for(connection, Flusher())
    pushed = frames(3)
    for number, frame in enumerate(pushed, start=1):
        outbound.push(frame)
        assert connection.transport.writes == pushed[:number]
        await next_turn()


async def test_one_flusher_writes_every_connection_of_the_turn() -> None:
    """A fan-out to several connections: each gets its own write at the end of the same turn."""
    flusher = Flusher()
    connections = [FakeConnection() for _ in range(3)]
    outbounds = [outbound_for(connection, flusher) for connection in connections]
    first, second = frames(2)
    for outbound in outbounds:
        outbound.push(first)
        outbound.push(second)
    await next_turn()
    for connection in connections:
        assert connection.transport.writes == [first, second]


async def test_collected_frames_count_against_the_bound() -> None:
    """More frames in one turn than the queue holds: overflow once, drop the rest, write nothing more."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, Flusher(), overflows)
    direct, *pushed = frames(QUEUE_SIZE + 3)
    outbound.push(direct)
    for frame in pushed:
        outbound.push(frame)
    assert overflows.count == 1
    await next_turn()
    assert connection.transport.writes == [direct]


async def test_a_paused_socket_hands_the_frames_to_the_writer() -> None:
    """While the socket pushes back, the turn's frames go to the writer, which writes them in one go."""
    connection = FakeConnection()
    outbound = outbound_for(connection, Flusher())
    connection.paused = True
    connection.drained.clear()
    pushed = frames(2)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    assert connection.transport.writes == []
    writer = asyncio.create_task(outbound.run_writer())
    try:
        connection.paused = False
        connection.drained.set()
        await next_write(connection)
    finally:
        writer.cancel()
    assert connection.transport.writes == [b"".join(pushed)]


async def test_a_closing_connection_gets_no_data_after_its_close_frame() -> None:
    """Frames still collected when the connection starts closing are dropped, never written."""
    connection = FakeConnection()
    outbound = outbound_for(connection, Flusher())
    direct, collected = frames(2)
    outbound.push(direct)
    outbound.push(collected)
    connection.protocol.state = State.CLOSING
    await next_turn()
    assert connection.transport.writes == [direct]


async def test_one_broken_connection_does_not_keep_the_others_from_their_frames() -> None:
    """A write that raises is logged; the connections after it in the same turn are still written."""
    flusher = Flusher()
    broken, healthy = FakeConnection(), FakeConnection()
    first, second = frames(2)
    broken_outbound, healthy_outbound = outbound_for(broken, flusher), outbound_for(healthy, flusher)
    for outbound in (broken_outbound, healthy_outbound):
        outbound.push(first)
    broken.transport.broken = True
    with capture_logs() as logs:
        for outbound in (broken_outbound, healthy_outbound):
            outbound.push(second)
        await next_turn()
    assert healthy.transport.writes == [first, second]
    assert [entry["event"] for entry in logs] == ["flush_failed"]
