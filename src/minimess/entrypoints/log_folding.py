"""Folding of library log records: a repeated message once, then a count per interval, all under one cap.

aiokafka logs every failed connection attempt, fetch and metadata refresh: with Kafka gone, two
servers wrote about 88 lines a second, each saying the same three things with another node id or
error text. So records are told apart by logger, level and message template (`record.msg`, before
its arguments), not by their text.

A record whose template was not written in the last interval is written at once and opens an
interval; its repeats within the interval are counted, and when the interval ends one line says
how many there were (with the latest one's text, at its level), which opens the next interval,
so a flood that goes on writes one line an interval. Over all templates together a token bucket
caps the lines written (a few at once, one a second on average); what it holds back is counted
and said in one line as soon as the cap allows. A summary is due when its interval has ended and
the cap has a token for it, and the handler wakes only then: never to find the cap empty.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol

import attrs

# The fields a summary line carries besides its text, for a JSON log's readers.
SUMMARY_FIELDS = ("repeated", "interval_seconds", "held_back", "loggers")

# A line due this close to now is due now. Timers may fire a hair early, and the cap's refill time,
# computed from the bucket in floating point, may leave it a rounding error short of a token: without
# this, such a wake-up would write nothing and plan another for the same instant.
_EARLY = 0.001


class Timer(Protocol):
    """A planned callback (asyncio's TimerHandle, threading's Timer)."""

    def cancel(self) -> None: ...


# Runs a callback after a delay; a test passes one it drives itself.
Schedule = Callable[[float, Callable[[], None]], Timer]
Clock = Callable[[], float]


@attrs.frozen(kw_only=True)
class FoldingLimits:
    """How much of a library's logging gets through."""

    # Seconds during which a template's repeats are counted rather than written.
    interval: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    # Lines written back to back at most, over all templates, summaries included ...
    burst: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    # ... and on average a second.
    per_second: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))


@attrs.define
class _Template:
    """One message template: the interval its last written line opened, and its repeats since."""

    opened: float
    repeats: int = 0
    latest: logging.LogRecord | None = None


class Folding:
    """Decides which records are written, and makes the summary lines; only time comes from outside."""

    def __init__(self, limits: FoldingLimits, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        # The templates written within their interval, or whose summary waits for the cap.
        self._templates: dict[Hashable, _Template] = {}
        # The cap: lines that may be written now, as of `_refilled`.
        self._tokens = float(limits.burst)
        self._refilled = clock()
        # Records the cap held back since the last line that said so, and since when.
        self._held_back = 0
        self._held_since = 0.0
        self._held_level = logging.NOTSET
        self._held_loggers: set[str] = set()

    def admit(self, record: logging.LogRecord) -> list[logging.LogRecord]:
        """The records to write now for `record`: itself or nothing, after any summary that is due."""
        now = self._clock()
        out = self._due(now)
        key = (record.name, record.levelno, _template(record))
        template = self._templates.get(key)
        if template is not None and (template.repeats or now < template.opened + self._limits.interval):
            # Within its interval, or after it with a summary the cap still holds: counted in it.
            template.repeats += 1
            template.latest = record
        elif self._take(now):
            self._templates[key] = _Template(opened=now)
            out.append(record)
        else:
            self._hold_back(record, now)
        return out

    def due(self) -> list[logging.LogRecord]:
        """The summary lines whose time has come (intervals ended, a cap that allows them)."""
        return self._due(self._clock())

    def next_due(self) -> float | None:
        """When the next summary line can be written (by the clock), or None when nothing is pending.

        The earliest interval end (or at once, for a count of held-back records), but never before
        the cap has a whole token again: at that time `due()` writes at least one line.
        """
        limits = self._limits
        starts = [
            template.opened + limits.interval for template in self._templates.values() if template.repeats
        ]
        if self._held_back:
            starts.append(self._held_since)
        if not starts:
            return None
        token = self._refilled + max(0.0, 1.0 - self._tokens) / limits.per_second
        return max(min(starts), token)

    def drain(self) -> list[logging.LogRecord]:
        """Every summary still pending, whatever the time and the cap (the log is closing)."""
        now = self._clock()
        out = [
            self._summary(template, now)
            for template in self._templates.values()
            if template.repeats and template.latest is not None
        ]
        self._templates.clear()
        if self._held_back:
            out.append(self._held_back_summary(now))
        return out

    def _due(self, now: float) -> list[logging.LogRecord]:
        out = []
        interval = self._limits.interval
        for key, template in list(self._templates.items()):
            if now + _EARLY < template.opened + interval:
                continue
            if not template.repeats or template.latest is None:
                del self._templates[key]
            elif self._take(now):
                out.append(self._summary(template, now))
                # The summary opens the next interval: a flood that goes on is one line an interval.
                self._templates[key] = _Template(opened=now)
        if self._held_back and self._take(now):
            out.append(self._held_back_summary(now))
        return out

    def _take(self, now: float) -> bool:
        """Whether the cap lets one more line through now (and count it)."""
        limits = self._limits
        self._tokens = min(float(limits.burst), self._tokens + (now - self._refilled) * limits.per_second)
        self._refilled = now
        if self._tokens + _EARLY * limits.per_second < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _hold_back(self, record: logging.LogRecord, now: float) -> None:
        if not self._held_back:
            self._held_since = now
        self._held_back += 1
        self._held_level = max(self._held_level, record.levelno)
        self._held_loggers.add(record.name)

    def _summary(self, template: _Template, now: float) -> logging.LogRecord:
        latest = template.latest
        assert latest is not None
        elapsed = now - template.opened
        try:
            message = latest.getMessage()
        except Exception:
            message = str(latest.msg)
        record = logging.makeLogRecord(dict(latest.__dict__))
        # It speaks of many records, maybe of several connections: of none in particular.
        record.__dict__.pop("websocket", None)
        record.msg = "%s (repeated %d times in the last %s s)"
        record.args = (message, template.repeats, _seconds(elapsed))
        record.exc_info = record.exc_text = record.stack_info = None
        record.created = time.time()
        record.repeated = template.repeats
        record.interval_seconds = round(elapsed, 3)
        return record

    def _held_back_summary(self, now: float) -> logging.LogRecord:
        elapsed = now - self._held_since
        limits = self._limits
        loggers = ", ".join(sorted(self._held_loggers))
        record = logging.LogRecord(
            __name__,
            self._held_level,
            __file__,
            0,
            "%d library log lines (%s) held back in the last %s s: at most %d at once and %s a second",
            (self._held_back, loggers, _seconds(elapsed), limits.burst, _seconds(limits.per_second)),
            None,
        )
        record.held_back = self._held_back
        record.loggers = loggers
        record.interval_seconds = round(elapsed, 3)
        self._held_back = 0
        self._held_level = logging.NOTSET
        self._held_loggers = set()
        return record


class FoldingHandler(logging.Handler):
    """Writes library records through `target`, folded; a summary goes out when its interval ends.

    A summary line is written in an empty context: it stands for records of whatever task logged
    them, so it must not take the `connection_id` of the task that happens to write it.
    """

    def __init__(
        self,
        target: logging.Handler,
        limits: FoldingLimits | None = None,
        clock: Clock = time.monotonic,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        self._target = target
        self._clock = clock
        self._folding = Folding(FoldingLimits() if limits is None else limits, clock)
        self._schedule = _call_later if schedule is None else schedule
        # The wake-up planned for when the next summary is due, when that is, and its number: a timer
        # thread may run a wake-up that was cancelled while it waited for the lock.
        self._wake: Timer | None = None
        self._wake_at: float | None = None
        self._plan_number = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for line in self._folding.admit(record):
                self._write(line, summary=line is not record)
            self._plan()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        self.acquire()
        try:
            self._cancel_wake()
            for line in self._folding.drain():
                self._write(line, summary=True)
        finally:
            self.release()
        super().close()

    def _woken(self, number: int) -> None:
        self.acquire()
        try:
            if number != self._plan_number:
                return  # cancelled, and planned again, while this one waited for the lock
            self._wake = self._wake_at = None
            for line in self._folding.due():
                self._write(line, summary=True)
            self._plan()
        finally:
            self.release()

    def _plan(self) -> None:
        """Wake up when the next summary is due, and only then.

        A line written in the meantime takes the cap's token and makes the summary due later, and a
        summary written by `emit` makes the wake-up needless: either way the planned one is replaced,
        so that no wake-up finds nothing to write. Counted and held-back records change nothing, so a
        flood plans no more timers than it writes lines.
        """
        due = self._folding.next_due()
        if due is not None and self._wake_at is not None and abs(due - self._wake_at) <= _EARLY / 2:
            return
        self._cancel_wake()
        if due is None:
            return
        number = self._plan_number
        self._wake_at = due
        self._wake = self._schedule(max(0.0, due - self._clock()), lambda: self._woken(number))

    def _cancel_wake(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake = self._wake_at = None
        self._plan_number += 1

    def _write(self, record: logging.LogRecord, summary: bool) -> None:
        if summary:
            contextvars.Context().run(self._target.handle, record)
        else:
            self._target.handle(record)


def _template(record: logging.LogRecord) -> Hashable:
    """What repeats of one message share: its format string, whatever it is filled with."""
    return record.msg if isinstance(record.msg, str) else type(record.msg).__qualname__


def _seconds(value: float) -> str:
    return f"{value:.3g}"


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    """On the event loop when the record came from it (library records do), else on a timer thread."""
    try:
        return asyncio.get_running_loop().call_later(delay, callback)
    except RuntimeError:
        timer = threading.Timer(delay, callback)
        timer.daemon = True
        timer.start()
        return timer
