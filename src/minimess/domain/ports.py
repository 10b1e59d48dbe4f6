"""The ports the core needs: a bus and its health, a clock, local connections, a token verifier."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import attrs

from minimess.domain.model import LogState, Message, Position, Topic
from minimess.domain.permissions import Grant

Frame = bytes
"""One message, already encoded for the wire; the same bytes serve every recipient."""

Acknowledgement = asyncio.Future[Position]
"""The bus's answer to one message handed to it: its position, or the error that leaves its outcome
unknown. Several may wait on one: a waiter that gives up must not cancel it (asyncio.shield)."""

Deliver = Callable[[Message], None]
"""Called by a broker, on the event loop, once for every message on the bus, in bus order,
with the message's position set."""


class Broker(Protocol):
    """The bus between servers: whatever one server publishes, every receiving server delivers."""

    def receiving(self, deliver: Deliver) -> AbstractAsyncContextManager[None]:
        """While the context is open, call `deliver` for every message published from now on.

        Entering connects (or starts connecting) to the bus; leaving stops receiving and flushes.
        """
        ...

    async def publish(self, message: Message) -> Position:
        """Return where the bus put `message` once it accepted it: `hand_over`, then its answer.

        Raises BrokerUnavailable when nothing was handed to the bus, PublishTimeout when the
        outcome is unknown.
        """
        ...

    async def hand_over(self, message: Message) -> Acknowledgement:
        """Hand `message` to the bus, and return once it holds it, without waiting for its answer.

        Messages handed over one after another (each call awaited before the next) are put on the
        bus in that order, per topic at least. Raises BrokerUnavailable when nothing was handed to
        the bus. The acknowledgement settles by the publish deadline, with where the bus put the
        message or with PublishTimeout (the outcome is unknown); awaiting it is optional.
        """
        ...

    def log(self, topic: Topic) -> LogState | None:
        """How far this server has received the log `topic` lies in; None while that is unknown."""
        ...

    async def caught_up(self, topic: Topic, offset: int) -> bool:
        """Wait until this server has received `topic`'s log up to `offset`, or return False at once
        when no wait can help (that offset lies beyond what the bus will deliver here).

        Callers bound the wait with their own timeout.
        """
        ...

    async def replay(self, topic: Topic, after: Position, upto: int) -> Sequence[Message] | None:
        """The messages of `topic` with offsets in (after.offset, upto], in order, read from the
        bus itself; None when the bus cannot give all of them (another epoch, too many, gone)."""
        ...


class BusHealth(Protocol):
    """What the bus tells operators about itself."""

    def is_ready(self) -> bool:
        """Whether publishing and receiving are expected to work right now."""
        ...

    def counters(self) -> Mapping[str, int]:
        """What the bus counted since start (records skipped, reconnects, ...), by name."""
        ...

    def lag(self) -> Mapping[int, int]:
        """Per partition of the bus, how many records this server has not read yet (empty: none kept)."""
        ...


class Renderer(Protocol):
    """Encodes what the core sends to every local subscriber into wire frames, once per frame."""

    def message(self, message: Message) -> Frame: ...
    def time(self, now: datetime) -> Frame: ...


class Clock(Protocol):
    """Where the current time comes from, so tests can fix it."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class Outbox(Protocol):
    """One local connection as the core sees it: somewhere to put frames, without waiting."""

    def push(self, frame: Frame) -> None:
        """Queue `frame` for the connection; never blocks and never raises.

        A connection that cannot keep up closes itself (slow consumer) instead of
        making the caller wait.
        """
        ...

    def room(self) -> Room:
        """How much more `push` takes now before the connection counts as a slow consumer."""
        ...


class TokenVerifier(Protocol):
    """Turns a token a client presents into the grant it proves."""

    def verify(self, token: str) -> Grant:
        """The grant `token` carries; InvalidToken when it is malformed, badly signed or expired."""
        ...


@attrs.frozen
class Room:
    """What an Outbox takes now before its connection counts as a slow consumer.

    `frames` more frames, and frames of `bytes` more bytes (the frame that crosses the byte bound
    is still taken; the one after it is not).
    """

    frames: int
    bytes: int
