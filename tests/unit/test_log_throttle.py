"""A flood of one event becomes a line at once and then at most one line an interval, with counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from structlog.testing import CapturingLogger

from minimess.adapters.websocket_server.log_throttle import ThrottledEvent


class Timers:
    """Scheduled callbacks that run when the test says the interval is over."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append((delay, callback))

    def elapse(self) -> None:
        due, self.pending = self.pending, []
        for _, callback in due:
            callback()


def throttled() -> tuple[ThrottledEvent, CapturingLogger, Timers]:
    logger, timers = CapturingLogger(), Timers()
    return (
        ThrottledEvent("accept_failed", interval=1.0, schedule=timers.schedule, logger=logger),
        logger,
        timers,
    )


def lines(logger: CapturingLogger) -> list[tuple[str, dict[str, Any]]]:
    return [(call.method_name, call.kwargs) for call in logger.calls]


def test_the_first_occurrence_is_written_at_once() -> None:
    event, logger, timers = throttled()
    event.record(error="EMFILE")
    assert lines(logger) == [("warning", {"count": 1, "error": "EMFILE"})]
    assert [delay for delay, _ in timers.pending] == [1.0]


def test_occurrences_within_the_interval_become_one_line_with_their_count() -> None:
    event, logger, timers = throttled()
    for n in range(1000):
        event.record(error=f"EMFILE {n}")
    assert len(logger.calls) == 1
    timers.elapse()
    assert lines(logger)[1] == ("warning", {"count": 999, "error": "EMFILE 999"})
    # Still within a flood: the next ones wait for the end of the next interval.
    event.record(error="again")
    assert len(logger.calls) == 2
    timers.elapse()
    assert lines(logger)[2] == ("warning", {"count": 1, "error": "again"})


def test_after_a_quiet_interval_the_next_occurrence_is_written_at_once() -> None:
    event, logger, timers = throttled()
    event.record(error="first")
    timers.elapse()
    assert len(logger.calls) == 1
    assert timers.pending == []
    event.record(error="later")
    assert lines(logger)[1] == ("warning", {"count": 1, "error": "later"})
