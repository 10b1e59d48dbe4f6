"""The in-process broker: the bus for a single server, and the test double for the Kafka one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from minimess.domain.model import Message
from minimess.domain.ports import Deliver

log = structlog.get_logger(__name__)


class MemoryBroker:
    """A bus inside one process: publish hands the message to every attached server at once.

    Delivery is synchronous, on the publisher's turn of the event loop, so the bus order is
    the publish order and a subscriber attached before a publish always sees it. Nothing is
    queued, so there is nothing to bound and nothing to lose.
    """

    def __init__(self) -> None:
        self._attached: list[Deliver] = []

    @asynccontextmanager
    async def attach(self, deliver: Deliver) -> AsyncIterator[None]:
        self._attached.append(deliver)
        try:
            yield
        finally:
            self._attached.remove(deliver)

    async def publish(self, message: Message) -> None:
        for deliver in tuple(self._attached):
            try:
                deliver(message)
            except Exception:
                # One failing server must not stop the message reaching the others.
                log.exception("delivery_failed", message_id=message.id)

    def is_ready(self) -> bool:
        return True

    def counters(self) -> dict[str, int]:
        return {}
