"""Log events that can come thousands of times a second, written at most once an interval with a count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

# Runs a callback after a delay (the event loop's call_later); a test passes one it drives itself.
Schedule = Callable[[float, Callable[[], None]], object]


def _call_later(delay: float, callback: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay, callback)


class ThrottledEvent:
    """One log event written at once, then at most once per `interval` while it keeps happening.

    Each line's `count` is how many occurrences it stands for, so no burst goes unreported: the
    ones during an interval are written as one line when it ends, with the latest one's fields.
    Only the event loop calls it.
    """

    def __init__(
        self,
        event: str,
        level: str = "warning",
        interval: float = 1.0,
        schedule: Schedule = _call_later,
        logger: Any = None,
    ) -> None:
        self._event = event
        self._level = level
        self._interval = interval
        self._schedule = schedule
        self._log = structlog.get_logger(__name__) if logger is None else logger
        # Whether a line was written less than `interval` ago (so the next ones wait).
        self._quiet_until_flush = False
        # Occurrences since the last line, and the fields of the latest of them.
        self._pending = 0
        self._fields: dict[str, Any] = {}

    def record(self, **fields: Any) -> None:
        """Note one occurrence: written now if the last line is older than the interval."""
        if self._quiet_until_flush:
            self._pending += 1
            self._fields = fields
            return
        self._write(1, fields)

    def _write(self, count: int, fields: dict[str, Any]) -> None:
        getattr(self._log, self._level)(self._event, count=count, **fields)
        self._quiet_until_flush = True
        self._schedule(self._interval, self._flush)

    def _flush(self) -> None:
        if self._pending:
            count, self._pending = self._pending, 0
            self._write(count, self._fields)
        else:
            self._quiet_until_flush = False
