"""One publish handed to the bus: its message, and the acknowledgement that will position it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from minimess.domain.model import Message, Position
from minimess.domain.ports import Acknowledgement


class Publishing:
    """A message the bus holds and has yet to answer for, or has answered for already.

    Its outcome is read once the acknowledgement is done (`done`, or a callback added with
    `when_done`): the message with its position, or BrokerUnavailable / PublishTimeout raised.
    Several publishes of one message id may share one Publishing: waiting on it never cancels it.
    """

    __slots__ = ("_acknowledgement", "_positioned", "message")

    def __init__(
        self,
        message: Message,
        acknowledgement: Acknowledgement,
        positioned: Callable[[Message, Position], Message],
    ) -> None:
        # Without its position until the bus gives it.
        self.message = message
        self._acknowledgement = acknowledgement
        # The message at the position subscribers saw it at (a repeat's is its original's).
        self._positioned = positioned

    def done(self) -> bool:
        return self._acknowledgement.done()

    def failed(self) -> bool:
        """Whether the bus answered with an error (its outcome unknown, or nothing handed over)."""
        acknowledgement = self._acknowledgement
        return acknowledgement.done() and (
            acknowledgement.cancelled() or acknowledgement.exception() is not None
        )

    def when_done(self, callback: Callable[[Publishing], None]) -> None:
        """Call `callback` with this publish once its outcome is known (soon, if it is now)."""
        self._acknowledgement.add_done_callback(lambda _: callback(self))

    def outcome(self) -> Message:
        """The message, positioned; raises what the bus answered instead. Only once `done`."""
        return self._positioned(self.message, self._acknowledgement.result())

    def abandon(self) -> None:
        """Nobody will read the outcome: take the bus's error, if any, so that it is not reported as
        never retrieved."""
        self._acknowledgement.add_done_callback(_taken)

    async def wait(self) -> Message:
        """Wait for the outcome (a waiter cancelled leaves the acknowledgement to the others)."""
        if not self._acknowledgement.done():
            await asyncio.wait([self._acknowledgement])
        return self.outcome()


def _taken(acknowledgement: Acknowledgement) -> None:
    if not acknowledgement.cancelled():
        acknowledgement.exception()
