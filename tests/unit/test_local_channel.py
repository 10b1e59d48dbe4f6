"""The local channel: its frames, its sequencer and workers' brokers on a Unix socket, garbage included."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimess.adapters.local_channel import frames
from minimess.adapters.local_channel.broker import ChannelBroker
from minimess.adapters.local_channel.sequencer import Sequencer
from minimess.adapters.local_channel.streams import read_frames
from minimess.domain.model import LogState, Message, Position, Topic, Uid
from tests.timeouts import scaled

NEWS = Topic("news")
NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def message(body: str = "hi", topic: Topic = NEWS) -> Message:
    return Message.create(topic, Uid("alice"), body, NOW, {"trace": "1"})


def raw(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(kind + payload)) + kind + payload


class Received:
    """What a broker delivered, with a way to wait for a count."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, count: int) -> list[Message]:
        async with asyncio.timeout(scaled(5)):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages


@asynccontextmanager
async def workers(sequencer: Sequencer, count: int) -> AsyncIterator[list[tuple[ChannelBroker, Received]]]:
    async with AsyncExitStack() as stack:
        joined = []
        for _ in range(count):
            broker, received = ChannelBroker(sequencer.path), Received()
            await stack.enter_async_context(broker.receiving(received))
            joined.append((broker, received))
        yield joined


@pytest.fixture
async def sequencer(tmp_path: Path) -> AsyncIterator[Sequencer]:
    sequencer = Sequencer(tmp_path / "channel.sock")
    async with sequencer.serving():
        yield sequencer


def test_a_message_survives_its_frame() -> None:
    sent = message()
    kind, payload = frames.split(
        frames.frame(frames.MESSAGE, {**frames.message_payload(sent), "offset": 7})[4:]
    )
    assert kind == frames.MESSAGE
    got = frames.decode_message(payload, "local-e")
    assert got == sent
    assert got.position == Position("local-e", 7)
    assert got.headers == {"trace": "1"}


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'],
    ids=["not-json", "array", "not-utf8", "string"],
)
def test_a_payload_that_is_no_json_object_is_a_bad_frame(body: bytes) -> None:
    with pytest.raises(frames.BadFrame):
        frames.split(frames.MESSAGE + body)


@pytest.mark.parametrize(
    "change",
    [
        {"topic": "bad topic"},
        {"sender": ""},
        {"offset": "1"},
        {"offset": True},
        {"ms": 10**20},
        {"body": None},
        {"id": 5},
        {"headers": {"a": 1}},
        {"headers": []},
    ],
    ids=repr,
)
def test_an_unsound_message_is_a_bad_frame(change: dict[str, object]) -> None:
    payload = {**frames.message_payload(message()), "offset": 1, **change}
    with pytest.raises(frames.BadFrame):
        frames.decode_message(payload, "local-e")


def test_a_message_without_a_field_is_a_bad_frame() -> None:
    payload = frames.message_payload(message())
    del payload["sender"]
    with pytest.raises(frames.BadFrame):
        frames.decode_message(payload, "local-e")


@pytest.mark.parametrize("length", [0, frames.MAX_FRAME + 1, 2**32 - 1])
def test_a_length_out_of_bounds_breaks_the_stream(length: int) -> None:
    with pytest.raises(frames.BrokenStream):
        frames.frame_length(struct.pack(">I", length))


async def test_reading_skips_bad_frames_and_ends_with_the_stream() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(raw(frames.ACK, b"{broken") + frames.frame(frames.ACK, {"request": 1, "offset": 2}))
    reader.feed_data(raw(frames.ACK, b"[")[:6])  # cut short by the end of the stream
    reader.feed_eof()
    assert [item async for item in read_frames(reader, "test")] == [(frames.ACK, {"request": 1, "offset": 2})]


async def test_a_publish_reaches_every_worker_at_the_acked_position(sequencer: Sequencer) -> None:
    async with workers(sequencer, 2) as joined:
        (first, first_received), (_, second_received) = joined
        positions = [await first.publish(message(f"m{n}")) for n in range(3)]
        assert positions == [Position(sequencer.epoch, n) for n in range(3)]
        for received in (first_received, second_received):
            got = await received.wait_for(3)
            assert [m.body for m in got] == ["m0", "m1", "m2"]
            assert [m.position for m in got] == positions


async def test_garbage_from_a_worker_is_skipped_and_the_channel_goes_on(sequencer: Sequencer) -> None:
    async with workers(sequencer, 1) as [(broker, received)]:
        _, writer = await asyncio.open_unix_connection(str(sequencer.path))
        writer.write(raw(frames.PUBLISH, b"garbage"))
        writer.write(frames.frame(frames.PUBLISH, {"request": "x", "message": {}}))
        writer.write(frames.frame(frames.PUBLISH, {"request": 1, "message": {"topic": "no spaces"}}))
        writer.write(frames.frame(frames.ACK, {"request": 1}))
        writer.write(struct.pack(">I", 2**31))
        await writer.drain()
        position = await broker.publish(message("after"))
        assert position.offset == 0
        assert [m.body for m in await received.wait_for(1)] == ["after"]
        writer.close()


async def test_garbage_from_the_sequencer_is_skipped_and_a_broken_stream_stops_the_worker(
    tmp_path: Path,
) -> None:
    """A bad frame is skipped; a length out of bounds loses the channel (`lost`), it raises nothing."""
    path = tmp_path / "fake.sock"
    sent = frames.message_payload(message("good"))

    async def fake_sequencer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frames.frame(frames.WELCOME, {"epoch": "local-e"}))
        writer.write(raw(frames.MESSAGE, b"not json"))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "topic": ""}))
        writer.write(frames.frame(b"?", {}))
        writer.write(frames.frame(frames.ACK, {"request": "one"}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 0}))
        writer.write(struct.pack(">I", frames.MAX_FRAME + 1))
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(fake_sequencer, path=str(path))
    async with server:
        broker, received = ChannelBroker(path), Received()
        async with broker.receiving(received):
            assert [m.body for m in await received.wait_for(1)] == ["good"]
            async with asyncio.timeout(scaled(5)):
                await broker.lost.wait()
            assert not broker.is_ready()
            assert broker.counters()["channel_frames_skipped"] == 4
            assert broker.log(NEWS) == LogState("local-e", last=0, first=0)


async def test_a_message_that_cannot_be_read_leaves_a_gap_and_its_topic_is_delivered_on(
    tmp_path: Path,
) -> None:
    """Skipping one frame must not stop the topic: later messages come, from a new first offset."""
    path = tmp_path / "fake.sock"
    sent = frames.message_payload(message("m"))

    async def fake_sequencer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frames.frame(frames.WELCOME, {"epoch": "local-e"}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 0}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 1, "sender": ""}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 2}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 2}))
        writer.write(frames.frame(frames.MESSAGE, {**sent, "offset": 3}))
        await writer.drain()
        await reader.read()

    server = await asyncio.start_unix_server(fake_sequencer, path=str(path))
    async with server:
        broker, received = ChannelBroker(path), Received()
        async with broker.receiving(received):
            assert [m.offset for m in await received.wait_for(3)] == [0, 2, 3]
            # Offset 1 was skipped, and offset 2 sent twice is delivered once.
            assert broker.counters()["channel_frames_skipped"] == 2
            assert broker.log(NEWS) == LogState("local-e", last=3, first=2)


async def test_a_worker_that_joins_late_starts_with_the_retained_messages(sequencer: Sequencer) -> None:
    async with workers(sequencer, 1) as [(publisher, _)]:
        for n in range(3):
            await publisher.publish(message(f"m{n}"))
        async with workers(sequencer, 1) as [(late, received)]:
            assert [m.offset for m in await received.wait_for(3)] == [0, 1, 2]
            state = late.log(NEWS)
            assert state is not None
            assert (state.first, state.last) == (0, 2)
            assert await late.caught_up(NEWS, 2)


async def test_a_worker_that_does_not_read_is_disconnected_and_the_others_go_on(tmp_path: Path) -> None:
    sequencer = Sequencer(tmp_path / "channel.sock", send_buffer_bytes=64 * 1024)
    async with sequencer.serving(), workers(sequencer, 1) as [(publisher, received)]:
        # A worker that never reads: its socket fills, then the sequencer's buffer for it.
        reader, writer = await asyncio.open_unix_connection(str(sequencer.path))
        body = "x" * 60_000
        count = 0
        async with asyncio.timeout(scaled(10)):
            while not sequencer.disconnected_slow:
                await publisher.publish(message(body))
                count += 1
        assert len(await received.wait_for(count)) == count
        writer.close()
        del reader


def test_frames_are_json_objects() -> None:
    assert json.loads(frames.frame(frames.ACK, {"request": 1, "offset": 2})[5:]) == {
        "request": 1,
        "offset": 2,
    }
