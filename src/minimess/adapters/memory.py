"""The in-process broker: the bus for a single server, and the test double for the Kafka one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import structlog

from minimess.domain.model import LogState, Message, Position, Topic
from minimess.domain.ports import Acknowledgement, Deliver

log = structlog.get_logger(__name__)


class MemoryBroker:
    """A bus inside one process: publish hands the message to every receiving server at once.

    Delivery is synchronous, on the publisher's turn of the event loop, so the bus order is
    the publish order and a receiver that started before a publish always sees it. Nothing is
    queued, so there is nothing to bound and nothing to lose.

    Each topic is a log of its own, its offsets counting from 0, in an epoch chosen when the
    broker is made: a restarted server starts new logs, which clients can tell from the epoch.
    The broker keeps no messages, so it can replay none.
    """

    def __init__(self) -> None:
        self._receivers: list[Deliver] = []
        self.epoch = f"mem-{uuid.uuid4().hex[:16]}"
        # The offset of each topic's last message.
        self._last: dict[Topic, int] = {}

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        self._receivers.append(deliver)
        try:
            yield
        finally:
            self._receivers.remove(deliver)

    async def publish(self, message: Message) -> Position:
        return await (await self.hand_over(message))

    async def hand_over(self, message: Message) -> Acknowledgement:
        # Delivered before it returns: the acknowledgement is settled already.
        acknowledgement: Acknowledgement = asyncio.get_running_loop().create_future()
        acknowledgement.set_result(self._put(message))
        return acknowledgement

    def _put(self, message: Message) -> Position:
        offset = self._last[message.topic] = self._last.get(message.topic, -1) + 1
        position = Position(self.epoch, offset)
        positioned = message.at(position)
        for deliver in tuple(self._receivers):
            try:
                deliver(positioned)
            except Exception:
                # One failing server must not stop the message reaching the others.
                log.exception("delivery_failed", message_id=message.id)
        return position

    def log(self, topic: Topic) -> LogState:
        return LogState(self.epoch, last=self._last.get(topic, -1), first=0)

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        # Delivery is immediate: an offset not reached yet lies in the future.
        return offset <= self._last.get(topic, -1)

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        return None

    def is_ready(self) -> bool:
        return True

    def counters(self) -> Mapping[str, int]:
        return {}

    def lag(self) -> Mapping[int, int]:
        # Delivery happens inside the publish: nothing is ever waiting to be read.
        return {}
