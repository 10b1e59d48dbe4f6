"""The outbound path: frames pushed in one turn of the event loop leave in one write, in order, bounded."""

from __future__ import annotations

import asyncio
from typing import cast

from structlog.testing import capture_logs
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from minimess.adapters.websocket_server.outbound import Flusher, Outbound
from minimess.adapters.wire.batched_frames import batched
from minimess.adapters.wire.server_frames import text_frame
from tests.timeouts import scaled
from tests.unit.fakes import FakeConnection, RecordingMetrics

QUEUE_SIZE = 4


class Overflows:
    """Counts on_overflow calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


class MarkingStamps:
    """Stamps that append their name to each frame and log each call, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def queued(self, frame: bytes) -> bytes:
        self.calls.append("queued")
        return frame + b"+queued"

    def written(self, frames: list[bytes]) -> list[bytes]:
        self.calls.append(f"written {len(frames)}")
        return [frame + b"+written" for frame in frames]


def frames(count: int) -> list[bytes]:
    return [text_frame(f"frame {number}".encode()) for number in range(count)]


def outbound_for(
    connection: FakeConnection,
    flusher: Flusher | None = None,
    overflows: Overflows | None = None,
    stamps: MarkingStamps | None = None,
    queue_bytes: int = 2**20,
    batch: bool = False,
) -> Outbound:
    return Outbound(
        cast(ServerConnection, connection),
        QUEUE_SIZE,
        overflows or Overflows(),
        flusher or Flusher(),
        stamps,
        queue_bytes=queue_bytes,
        batch=batch,
    )


async def next_turn() -> None:
    """Let the loop run the callbacks already scheduled, the flusher's end of turn among them.

    Deterministic: asyncio runs callbacks in the order they were scheduled, and this task's
    resumption is scheduled after the flusher's callback.
    """
    await asyncio.sleep(0)


def pause(connection: FakeConnection) -> None:
    """The socket pushes back until `resume`."""
    connection.paused = True
    connection.drained.clear()


def resume(connection: FakeConnection) -> None:
    connection.paused = False
    connection.drained.set()


async def drain_with_writer(connection: FakeConnection, outbound: Outbound) -> None:
    """Let the socket take frames again, and wait until the writer has written."""
    try:
        connection.paused = False
        connection.drained.set()
        async with asyncio.timeout(scaled(5)):
            await connection.transport.written.wait()
    finally:
        await outbound.close()


async def test_the_first_frame_of_a_turn_goes_at_once_and_the_rest_in_one_write_at_its_end() -> None:
    """Four pushes in one turn: the first is written during push, as pushed, the other three after."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    first, *rest = frames(4)
    outbound.push(first)
    assert connection.transport.writes == [first]
    assert connection.transport.writes[0] is first
    for frame in rest:
        outbound.push(frame)
    assert connection.transport.writes == [first]
    assert outbound.queued == 3
    await next_turn()
    assert connection.transport.writes == [first, b"".join(rest)]
    assert outbound.queued == 0


async def test_at_one_frame_per_turn_every_frame_is_written_during_its_push() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection)
    pushed = frames(3)
    for number, frame in enumerate(pushed, start=1):
        outbound.push(frame)
        assert connection.transport.writes == pushed[:number]
        await next_turn()


async def test_one_flusher_writes_every_connection_of_the_turn() -> None:
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


class WritesWhenObserved(RecordingMetrics):
    """Records, with each fan-out observed, how many writes the connections' sockets had got by then."""

    def __init__(self, connections: list[FakeConnection]) -> None:
        super().__init__()
        self.connections = connections
        self.writes_then: list[list[int]] = []

    def fanned_out(self, seconds: float) -> None:
        super().fanned_out(seconds)
        self.writes_then.append([len(connection.transport.writes) for connection in self.connections])


async def test_fan_outs_are_timed_to_the_end_of_the_turn_that_wrote_their_collected_frames() -> None:
    """Each message is observed once, when the turn ends, after the collected frames were written."""
    connections = [FakeConnection() for _ in range(2)]
    metrics = WritesWhenObserved(connections)
    flusher = Flusher(metrics=metrics)
    outbounds = [outbound_for(connection, flusher) for connection in connections]
    for frame in frames(2):
        flusher.fan_out_started()
        for outbound in outbounds:
            outbound.push(frame)
    assert metrics.events == []
    await next_turn()
    assert metrics.writes_then == [[2, 2], [2, 2]]
    first, second = [seconds for (seconds,) in metrics.named("fanned_out")]
    assert isinstance(first, float)
    assert isinstance(second, float)
    assert first >= second >= 0
    await next_turn()
    assert len(metrics.events) == 2


async def test_a_fan_out_that_wrote_nothing_still_ends_its_turn_and_is_observed() -> None:
    """Every subscriber's socket pushing back (or nothing to write): the turn is ended all the same."""
    metrics = RecordingMetrics()
    flusher = Flusher(metrics=metrics)
    flusher.fan_out_started()
    await next_turn()
    assert len(metrics.named("fanned_out")) == 1


async def test_past_the_bound_the_outbound_overflows_once_and_drops_the_rest() -> None:
    """Collected frames count against the bound like queued ones; the frames refused are counted."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows)
    direct, *pushed = frames(QUEUE_SIZE + 3)
    outbound.push(direct)
    for frame in pushed:
        outbound.push(frame)
    assert overflows.count == 1
    assert (outbound.dropped, outbound.queued) == (2, QUEUE_SIZE)
    await next_turn()
    assert connection.transport.writes == [direct]


async def test_a_paused_socket_hands_the_frames_to_the_writer_which_writes_them_together() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection)
    connection.paused = True
    connection.drained.clear()
    pushed = frames(2)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    assert connection.transport.writes == []
    await drain_with_writer(connection, outbound)
    assert connection.transport.writes == [b"".join(pushed)]


async def test_with_batch_the_rest_of_a_turn_goes_as_one_frame_of_lines() -> None:
    """A client of minimess.batch: the first frame of a turn as it is, the rest batched."""
    connection = FakeConnection()
    outbound = outbound_for(connection, batch=True)
    first, *rest = frames(4)
    for frame in (first, *rest):
        outbound.push(frame)
    await next_turn()
    assert connection.transport.writes == [first, batched(rest)]
    assert connection.transport.writes[1] == text_frame(b"frame 1\nframe 2\nframe 3")


async def test_with_batch_the_writer_writes_what_waited_as_one_frame_of_lines() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection, batch=True)
    pause(connection)
    pushed = frames(3)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    await drain_with_writer(connection, outbound)
    assert connection.transport.writes == [text_frame(b"frame 0\nframe 1\nframe 2")]


async def test_without_direct_writes_every_frame_waits_for_the_writer() -> None:
    """The seam benchmarks.variants measures the direct writes with."""
    connection = FakeConnection()
    outbound = outbound_for(connection, Flusher(direct_writes=False))
    pushed = frames(2)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    assert connection.transport.writes == []
    await drain_with_writer(connection, outbound)
    assert connection.transport.writes == [b"".join(pushed)]


async def test_a_closing_connection_gets_no_data_after_its_close_frame() -> None:
    """Frames still collected when the connection starts closing are dropped, never written."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    direct, collected = frames(2)
    outbound.push(direct)
    outbound.push(collected)
    connection.protocol.state = State.CLOSING
    await next_turn()
    assert connection.transport.writes == [direct]
    assert outbound.dropped == 1  # the collected frame, which never reached the socket
    outbound.push(frames(1)[0])
    assert outbound.dropped == 2


async def test_every_frame_of_an_overflowing_turn_that_is_not_written_counts_as_dropped() -> None:
    """The frames collected before the overflow are dropped with the rest when the turn ends."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows)
    pushed = frames(QUEUE_SIZE + 5)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    assert overflows.count == 1
    assert connection.transport.writes == [pushed[0]]
    assert outbound.dropped + outbound.queued == len(pushed) - 1


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
    assert [(entry["event"], entry["connection_id"]) for entry in logs] == [
        ("flush_failed", broken.id.hex[:12])
    ]


async def test_stamps_mark_a_frame_queued_when_pushed_and_written_when_it_goes_to_the_socket() -> None:
    """A direct write gets both at once; frames collected in the turn get `written` at its end."""
    connection = FakeConnection()
    stamps = MarkingStamps()
    outbound = outbound_for(connection, stamps=stamps)
    direct, *collected = frames(3)
    outbound.push(direct)
    for frame in collected:
        outbound.push(frame)
    assert stamps.calls == ["queued", "written 1", "queued", "queued"]
    await next_turn()
    assert stamps.calls[-1] == "written 2"
    assert connection.transport.writes == [
        direct + b"+queued+written",
        b"".join(frame + b"+queued+written" for frame in collected),
    ]


async def test_stamps_mark_frames_the_writer_drains_when_it_writes_them() -> None:
    connection = FakeConnection()
    stamps = MarkingStamps()
    outbound = outbound_for(connection, stamps=stamps)
    connection.paused = True
    connection.drained.clear()
    pushed = frames(2)
    for frame in pushed:
        outbound.push(frame)
    await next_turn()
    assert stamps.calls == ["queued", "queued"]
    await drain_with_writer(connection, outbound)
    assert stamps.calls == ["queued", "queued", "written 2"]
    assert connection.transport.writes == [b"".join(frame + b"+queued+written" for frame in pushed)]


async def test_drain_returns_at_once_when_nothing_is_held() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection)
    outbound.push(frames(1)[0])
    async with asyncio.timeout(scaled(5)):
        await outbound.drain()


async def test_drain_returns_once_every_held_frame_is_written_those_pushed_meanwhile_included() -> None:
    """Collected, queued and the writer's frames all reach the socket, in order, before drain returns."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    pause(connection)
    queued, collected, pushed_while_draining = frames(3)
    outbound.push(queued)
    await next_turn()
    outbound.push(collected)
    try:
        draining = asyncio.create_task(outbound.drain())
        await next_turn()
        outbound.push(pushed_while_draining)
        await next_turn()
        assert not draining.done()
        assert connection.transport.writes == []
        resume(connection)
        async with asyncio.timeout(scaled(5)):
            await draining
        assert b"".join(connection.transport.writes) == queued + collected + pushed_while_draining
        assert outbound.queued == 0
    finally:
        await outbound.close()


async def test_drain_waits_until_the_socket_has_taken_everything_written_to_it() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection)
    connection.transport.buffered = 100
    pause(connection)
    draining = asyncio.create_task(outbound.drain())
    await next_turn()
    assert not draining.done()
    connection.transport.buffered = 0
    resume(connection)
    async with asyncio.timeout(scaled(5)):
        await draining


async def test_drain_of_a_stopped_outbound_returns_at_once() -> None:
    """An overflowed outbound holds frames that will never go out, and no writer runs for them here."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows)
    pause(connection)
    for frame in frames(QUEUE_SIZE + 1):
        outbound.push(frame)
    assert overflows.count == 1
    async with asyncio.timeout(scaled(5)):
        await outbound.drain()


async def test_drain_of_a_closing_connection_returns_at_once() -> None:
    connection = FakeConnection()
    outbound = outbound_for(connection)
    pause(connection)
    outbound.push(frames(1)[0])
    connection.protocol.state = State.CLOSING
    async with asyncio.timeout(scaled(5)):
        await outbound.drain()
    assert connection.transport.writes == []


async def test_drain_of_a_connection_whose_socket_is_gone_returns_at_once() -> None:
    """The client went away before the shutdown drained it: its websockets state may still be open."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    pause(connection)
    outbound.push(frames(1)[0])
    connection.transport.closed = True
    async with asyncio.timeout(scaled(5)):
        await outbound.drain()
    assert connection.transport.writes == []


async def test_drain_returns_when_the_outbound_overflows_while_it_waits() -> None:
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows)
    pause(connection)
    # The writer holds the first; the bound counts those after it.
    first, *rest = frames(1 + QUEUE_SIZE + 1)
    outbound.push(first)
    try:
        draining = asyncio.create_task(outbound.drain())
        await next_turn()
        assert not draining.done()
        for frame in rest:
            outbound.push(frame)
        assert overflows.count == 1
        async with asyncio.timeout(scaled(5)):
            await draining
    finally:
        await outbound.close()


async def test_drain_returns_at_once_once_the_outbound_is_closed() -> None:
    """Without a writer, nothing pushed later could go out: the connection is ending."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    await outbound.close()
    pause(connection)
    outbound.push(frames(1)[0])
    async with asyncio.timeout(scaled(5)):
        await outbound.drain()
    assert connection.transport.writes == []


async def test_emptied_returns_once_the_writer_handed_everything_to_the_socket_and_room_follows() -> None:
    """Room counts what is held; `emptied` waits for the writer, not for the socket's own buffer."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    assert outbound.room().frames == QUEUE_SIZE - 1
    async with asyncio.timeout(scaled(5)):
        await outbound.emptied()  # nothing held: at once
    pause(connection)
    for frame in frames(3):
        outbound.push(frame)
        await next_turn()
    assert outbound.room().frames == QUEUE_SIZE - 1 - 3
    try:
        emptying = asyncio.create_task(outbound.emptied())
        await next_turn()
        assert not emptying.done()
        resume(connection)
        async with asyncio.timeout(scaled(5)):
            await emptying
        assert outbound.room().frames == QUEUE_SIZE - 1
        assert b"".join(connection.transport.writes) == b"".join(frames(3))
    finally:
        await outbound.close()


def sized(count: int, size: int) -> list[bytes]:
    """`count` distinct frames of exactly `size` bytes each."""
    return [text_frame(f"{number:06d}".encode().ljust(size - 2, b"x")) for number in range(count)]


async def test_collected_bytes_past_the_byte_bound_overflow_once_though_few_frames_are_held() -> None:
    """Three frames of 100 bytes against a bound of 250: the third is taken (it starts under the
    bound), the fourth is not; the frame bound (4) is never reached."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows, queue_bytes=250)
    direct, *collected = sized(5, 100)
    outbound.push(direct)  # to the socket: its buffer is empty again (the fake sends at once)
    for frame in collected[:3]:
        outbound.push(frame)
    assert (overflows.count, outbound.pending_bytes) == (0, 300)
    outbound.push(collected[3])
    assert overflows.count == 1
    outbound.push(direct)
    assert overflows.count == 1
    await next_turn()
    assert connection.transport.writes == [direct]


async def test_what_the_sockets_buffer_holds_counts_against_the_byte_bound() -> None:
    """A client that stopped reading leaves its bytes in the socket's buffer: they count too."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows, queue_bytes=1000)
    direct, collected = sized(2, 100)
    outbound.push(direct)
    connection.transport.buffered = 900
    assert outbound.room().bytes == 100
    outbound.push(collected)  # 900 pending: under the bound, taken
    assert (overflows.count, outbound.pending_bytes) == (0, 1000)
    assert outbound.room().bytes == 0
    outbound.push(collected)
    assert overflows.count == 1


async def test_bytes_handed_to_the_socket_leave_the_count() -> None:
    """Frames flushed at the end of a turn, or written by the writer, are no longer held: a client
    that keeps reading gets many times the bound without ever overflowing."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows, queue_bytes=250)
    for _ in range(10):
        for frame in sized(3, 100):  # one direct, two collected and flushed
            outbound.push(frame)
        await next_turn()
        assert outbound.pending_bytes == 0
    try:
        for _ in range(10):
            pause(connection)
            for frame in sized(2, 100):  # queued for the writer
                outbound.push(frame)
            await next_turn()
            assert outbound.pending_bytes == 200
            connection.transport.written.clear()
            resume(connection)
            async with asyncio.timeout(scaled(5)):
                await connection.transport.written.wait()
            assert outbound.pending_bytes == 0
    finally:
        await outbound.close()
    assert overflows.count == 0
    assert len(b"".join(connection.transport.writes)) == 10 * 300 + 10 * 200


async def test_the_batch_the_writer_holds_counts_against_the_byte_bound() -> None:
    """Frames the writer took from the queue but cannot write yet are still the server's memory."""
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows, queue_bytes=250)
    pause(connection)
    first, second, third = sized(3, 100)
    outbound.push(first)
    outbound.push(second)
    await next_turn()
    try:
        await next_turn()  # the writer holds the first and waits for the socket
        assert outbound.queued == 2
        outbound.push(third)  # 200 pending: taken
        assert (overflows.count, outbound.pending_bytes) == (0, 300)
        outbound.push(first)
        assert overflows.count == 1
    finally:
        await outbound.close()


async def test_room_in_bytes_is_what_the_bound_leaves_and_nothing_once_stopped() -> None:
    connection = FakeConnection()
    overflows = Overflows()
    outbound = outbound_for(connection, overflows=overflows, queue_bytes=1000)
    assert outbound.room().bytes == 1000
    pause(connection)
    for frame in sized(3, 100):
        outbound.push(frame)
    connection.transport.buffered = 50
    assert outbound.room().bytes == 1000 - 300 - 50
    for frame in sized(QUEUE_SIZE, 100):
        outbound.push(frame)
    assert overflows.count == 1
    assert (outbound.room().frames, outbound.room().bytes) == (0, 0)


async def test_the_writer_exists_only_while_frames_wait_for_a_socket_that_pushes_back() -> None:
    """No writer while the socket takes frames; one once it pushes back, which writes every frame queued
    over several turns in order, then ends; the next frame goes straight to the socket again."""
    connection = FakeConnection()
    outbound = outbound_for(connection)
    before, *queued_frames, after = frames(4)
    outbound.push(before)
    await next_turn()
    assert not outbound.writing
    pause(connection)
    for frame in queued_frames:
        outbound.push(frame)
        await next_turn()
    assert outbound.writing
    assert connection.transport.writes == [before]
    connection.transport.written.clear()
    resume(connection)
    async with asyncio.timeout(scaled(5)):
        await connection.transport.written.wait()
        while outbound.writing:
            await next_turn()
    assert connection.transport.writes == [before, b"".join(queued_frames)]
    assert (outbound.queued, outbound.pending_bytes) == (0, 0)
    outbound.push(after)
    assert connection.transport.writes[-1] == after
    assert not outbound.writing


async def test_a_writer_that_fails_is_reported_and_the_outbound_stops() -> None:
    """The writer runs in a task of its own: a bug it meets goes to `on_error`, and nothing more is taken."""
    connection = FakeConnection()
    failures: list[Exception] = []
    outbound = Outbound(
        cast(ServerConnection, connection),
        QUEUE_SIZE,
        Overflows(),
        Flusher(),
        queue_bytes=2**20,
        on_error=failures.append,
    )
    pause(connection)
    outbound.push(frames(1)[0])
    await next_turn()
    connection.transport.broken = True
    resume(connection)
    async with asyncio.timeout(scaled(5)):
        while outbound.writing:
            await next_turn()
    assert [type(failure) for failure in failures] == [RuntimeError]
    outbound.push(frames(1)[0])
    assert outbound.dropped == 1
