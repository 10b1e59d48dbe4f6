"""The in-process broker: the bus for a single server, and the test double for the Kafka one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import structlog

from minimess.domain.model import Message
from minimess.domain.ports import Deliver

log = structlog.get_logger(__name__)


class MemoryBroker:
    """A bus inside one process: publish hands the message to every receiving server at once.

    Delivery is synchronous, on the publisher's turn of the event loop, so the bus order is
    the publish order and a receiver that started before a publish always sees it. Nothing is
    queued, so there is nothing to bound and nothing to lose.
    """

    def __init__(self) -> None:
        self._receivers: list[Deliver] = []

    @asynccontextmanager
    async def receiving(self, deliver: Deliver) -> AsyncIterator[None]:
        self._receivers.append(deliver)
        try:
            yield
        finally:
            self._receivers.remove(deliver)

    async def publish(self, message: Message) -> None:
        for deliver in tuple(self._receivers):
            try:
                deliver(message)
            except Exception:
                # One failing server must not stop the message reaching the others.
                log.exception("delivery_failed", message_id=message.id)

    def is_ready(self) -> bool:
        return True

    def counters(self) -> Mapping[str, int]:
        return {}
