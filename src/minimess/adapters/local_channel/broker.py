"""A worker's broker on the local channel: publishes through the sequencer, delivers what it sends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from minimess.adapters.local_channel import frames
from minimess.adapters.local_channel.streams import read_frames
from minimess.adapters.local_channel.turns import TurnWriter
from minimess.domain.errors import BrokerUnavailable, PublishTimeout
from minimess.domain.model import LogState, Message, Position, Topic
from minimess.domain.ports import Acknowledgement, Deliver

log = structlog.get_logger(__name__)

# Seconds a publish waits for the sequencer's ack; the sequencer answers in one turn of its loop,
# so only a stopped supervisor or a lost channel comes near it.
PUBLISH_TIMEOUT = 5.0
# Seconds to connect and be welcomed: the supervisor listens before it starts any worker.
JOIN_TIMEOUT = 10.0


class ChannelBroker:
    """The bus of one worker among the workers of one host, behind the sequencer on a Unix socket.

    Like the memory broker, it keeps no messages and replays none: every worker receives every
    message, so each worker's history answers recoveries. A worker that joins late (restarted)
    receives the latest messages the sequencer retained first, and knows from where it received
    each topic's log (`LogState.first`). When the channel is lost, `lost` is set: the worker
    cannot deliver any more, so it drains its clients and exits, and its supervisor restarts it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self.epoch = ""
        self._last: dict[Topic, int] = {}
        self._first: dict[Topic, int] = {}
        self._writer: TurnWriter | None = None
        self._requests = itertools.count()
        self._acks: dict[int, Acknowledgement] = {}
        # Set (each time) when a topic's log advances, for `caught_up`; replaced after.
        self._advanced = asyncio.Event()
        # Set when the channel is lost; the worker stops on it.
        self.lost = asyncio.Event()
        self._received = 0
        self._skipped = 0

    @contextlib.asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        async with asyncio.timeout(JOIN_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(str(self._path), limit=frames.MAX_FRAME)
            kind, payload = await anext(read_frames(reader, "sequencer"))
        if kind != frames.WELCOME:
            writer.close()
            raise BrokerUnavailable(f"the sequencer began with {kind!r}, not a welcome")
        self.epoch = frames.field(payload, "epoch", str)
        self._writer = TurnWriter(writer)
        reading = asyncio.create_task(self._read(reader, deliver))
        try:
            yield
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            self._writer = None
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, deliver: Deliver) -> None:
        try:
            async for kind, payload in read_frames(reader, "sequencer", self._skip):
                try:
                    self._take(kind, payload, deliver)
                except frames.BadFrame as error:
                    self._skip()
                    log.warning("channel_frame_skipped", peer="sequencer", reason=str(error))
            reason = "the sequencer closed the channel"
        except (frames.BrokenStream, ConnectionError) as error:
            reason = str(error)
        except asyncio.CancelledError:
            # The worker stops receiving: nothing is lost.
            raise
        except BaseException:
            # Whatever else ended the reading (a log line that could not be written), the channel
            # is gone for this worker all the same.
            self._lose()
            raise
        self._lose()
        log.error("channel_broken", reason=reason)

    def _take(self, kind: bytes, payload: dict[str, Any], deliver: Deliver) -> None:
        if kind == frames.MESSAGE:
            message = frames.decode_message(payload, self.epoch)
            last = self._last.get(message.topic)
            if last is not None and message.offset <= last:
                raise frames.BadFrame(f"offset {message.offset} of {message.topic} received already")
            if last is None or message.offset != last + 1:
                # The first of the topic here, or frames before it could not be read and were
                # skipped: the topic is whole from this message on, and delivery goes on.
                self._first[message.topic] = message.offset
            self._last[message.topic] = message.offset
            self._received += 1
            self._advance()
            try:
                deliver(message)
            except Exception:
                # One message the server could not take must not stop the channel.
                log.exception("delivery_failed", message_id=message.id)
        elif kind == frames.ACK:
            future = self._acks.pop(frames.field(payload, "request", int), None)
            if future is not None and not future.done():
                future.set_result(Position(self.epoch, frames.field(payload, "offset", int)))
        elif kind == frames.START:
            topic = Topic(frames.field(payload, "topic", str))
            first = frames.field(payload, "first", int)
            self._first[topic] = first
            self._last[topic] = first - 1
        else:
            raise frames.BadFrame(f"unexpected kind {kind!r}")

    def _skip(self) -> None:
        self._skipped += 1

    def _advance(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    def _lose(self) -> None:
        self._writer = None
        for future in self._acks.values():
            if not future.done():
                future.set_exception(PublishTimeout("the channel was lost before the sequencer answered"))
        self._acks.clear()
        self.lost.set()
        # Wakes `caught_up` waiters, which give up now.
        self._advance()

    async def publish(self, message: Message) -> Position:
        return await (await self.hand_over(message))

    async def hand_over(self, message: Message) -> Acknowledgement:
        """Write the message to the sequencer; its answer settles the acknowledgement.

        Written in call order on one stream, so handed over in order. Not written (no channel):
        BrokerUnavailable. Written and unanswered within the publish deadline, or the channel lost
        before the answer: PublishTimeout, the sequencer may have numbered it.
        """
        writer = self._writer
        if writer is None or writer.writer.is_closing():
            raise BrokerUnavailable("the local channel is not connected")
        request = next(self._requests)
        loop = asyncio.get_running_loop()
        acknowledgement: Acknowledgement = loop.create_future()
        self._acks[request] = acknowledgement
        writer.write(
            frames.frame(frames.PUBLISH, {"request": request, "message": frames.message_payload(message)})
        )

        def expire() -> None:
            if self._acks.pop(request, None) is not None and not acknowledgement.done():
                acknowledgement.set_exception(PublishTimeout("the sequencer did not answer in time"))

        expiry = loop.call_later(PUBLISH_TIMEOUT, expire)
        acknowledgement.add_done_callback(lambda _: expiry.cancel())
        return acknowledgement

    def log(self, topic: Topic) -> LogState | None:
        if not self.epoch:
            return None
        last = self._last.get(topic, -1)
        return LogState(self.epoch, last=last, first=self._first.get(topic, 0))

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        # The sequencer numbers in order and sends every message to every worker: an offset beyond
        # this worker's last one is on its way, unless no one published it yet (the caller's timeout).
        while self._last.get(topic, -1) < offset:
            if self.lost.is_set():
                return False
            await self._advanced.wait()
        return True

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        return None

    def is_ready(self) -> bool:
        return self._writer is not None and not self.lost.is_set()

    def counters(self) -> Mapping[str, int]:
        return {"channel_received": self._received, "channel_frames_skipped": self._skipped}

    def lag(self) -> Mapping[int, int]:
        return {}
