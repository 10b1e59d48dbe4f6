"""Library log floods are folded: a template once, then a count an interval, and a cap on all lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from minimess.entrypoints.log_folding import FoldingHandler, FoldingLimits
from minimess.entrypoints.log_setup import configure_logging
from tests.timeouts import scaled

LIMITS = FoldingLimits(interval=10.0, burst=3, per_second=1.0)
CONNECT = "Unable connect to node with id %s: %s"
METADATA = "Unable to update metadata from %s"
FETCH = "Failed fetch messages from %s: %s"
# Between two records of a flood: 32 a second, a step binary floating point adds up exactly.
STEP = 1 / 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Timer:
    """One scheduled callback; cancelling it before its time means it never runs."""

    def __init__(self, timers: Timers, when: float, delay: float, callback: Callable[[], None]) -> None:
        self.timers, self.when, self.delay, self.callback = timers, when, delay, callback

    def cancel(self) -> None:
        if self in self.timers.pending:
            self.timers.pending.remove(self)


class Timers:
    """Callbacks scheduled by the handler, run when the test moves the clock past them.

    Each run is a wake-up, kept with its delay as scheduled and the lines it wrote, so that a test
    can tell a wake-up that had something to do from one that only plans the next.
    """

    # More wake-ups than this in one `advance`: the handler plans them faster than time passes.
    MOST_WAKES = 10_000

    def __init__(self, clock: Clock, written: Written) -> None:
        self.clock = clock
        self.written = written
        self.pending: list[Timer] = []
        # (delay, lines written) of each callback run.
        self.wakes: list[tuple[float, int]] = []

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self, self.clock.now + delay, delay, callback)
        self.pending.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock on, running each callback that falls due at its own time, in order."""
        end = self.clock.now + seconds
        runs = 0
        while due := [timer for timer in self.pending if timer.when <= end]:
            runs += 1
            # Without this a handler that reschedules itself for "now" would hang the test.
            assert runs <= self.MOST_WAKES, f"{runs} wake-ups by {self.clock.now}: the handler spins"
            timer = min(due, key=lambda timer: timer.when)
            self.pending.remove(timer)
            self.clock.now = max(self.clock.now, timer.when)
            before = len(self.written.lines)
            timer.callback()
            self.wakes.append((timer.delay, len(self.written.lines) - before))
        self.clock.now = end


class Written(logging.Handler):
    """What reaches the real handler: each record with its text and the log context it was written in."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(
            {
                "at": self.clock.now,
                "logger": record.name,
                "level": record.levelname,
                "text": record.getMessage(),
                "repeated": getattr(record, "repeated", None),
                "held_back": getattr(record, "held_back", None),
                "context": structlog.contextvars.get_contextvars(),
                "websocket": hasattr(record, "websocket"),
            }
        )

    def texts(self) -> list[str]:
        return [line["text"] for line in self.lines]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def written(clock: Clock) -> Written:
    return Written(clock)


@pytest.fixture
def timers(clock: Clock, written: Written) -> Timers:
    return Timers(clock, written)


@pytest.fixture
def folding(clock: Clock, timers: Timers, written: Written) -> FoldingHandler:
    return FoldingHandler(written, LIMITS, clock=clock, schedule=timers.schedule)


def record(
    template: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka", **extra: Any
) -> logging.LogRecord:
    entry = logging.LogRecord(name, level, __file__, 1, template, args, None)
    entry.__dict__.update(extra)
    return entry


def test_a_flood_of_one_template_is_one_line_then_one_summary_with_the_count(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    """The arguments vary (node ids, error texts): the template is what repeats."""
    for n in range(1000):
        folding.handle(record(CONNECT, n, f"[Errno 111] attempt {n}"))
        timers.advance(STEP / 8)
    assert written.texts() == ["Unable connect to node with id 0: [Errno 111] attempt 0"]
    timers.advance(10.0 - 1000 * STEP / 8)
    (first, summary) = written.lines
    assert summary["text"] == (
        "Unable connect to node with id 999: [Errno 111] attempt 999 (repeated 999 times in the last 10 s)"
    )
    assert (summary["repeated"], summary["level"], summary["logger"]) == (999, "ERROR", "aiokafka")
    assert summary["at"] == first["at"] + 10.0


def test_a_flood_that_goes_on_writes_one_line_an_interval(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    for _ in range(55 * 32):  # 55 s at 32 records a second
        folding.handle(record(METADATA, [1]))
        timers.advance(STEP)
    assert [line["repeated"] for line in written.lines] == [None, 319, 320, 320, 320, 320]
    # The flood stops: the last interval's count still comes out when it ends, and nothing after.
    timers.advance(30.0)
    assert [line["repeated"] for line in written.lines][6:] == [160]
    assert timers.pending == []
    # Quiet since: the next one is written at once.
    folding.handle(record(METADATA, [1]))
    assert written.lines[-1]["text"] == "Unable to update metadata from [1]"


def test_distinct_templates_and_levels_each_get_their_own_line_and_count(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    for n in range(30):
        folding.handle(record(CONNECT, 1, "refused"))
        folding.handle(record(FETCH, 1, f"NodeNotReadyError {n}", name="aiokafka.consumer.fetcher"))
        folding.handle(record(FETCH, 1, "a warning", level=logging.WARNING, name="aiokafka.consumer.fetcher"))
    assert [(line["logger"], line["level"]) for line in written.lines] == [
        ("aiokafka", "ERROR"),
        ("aiokafka.consumer.fetcher", "ERROR"),
        ("aiokafka.consumer.fetcher", "WARNING"),
    ]
    timers.advance(10.0)
    summaries = written.lines[3:]
    assert sorted((line["level"], line["repeated"]) for line in summaries) == [
        ("ERROR", 29),
        ("ERROR", 29),
        ("WARNING", 29),
    ]
    assert any(
        line["text"].startswith("Failed fetch messages from 1: NodeNotReadyError 29 (") for line in summaries
    )


def test_no_mix_of_templates_gets_past_the_cap_and_what_it_held_back_is_counted(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    """Messages formatted before logging are all different templates: the cap alone bounds them."""
    for n in range(100):
        folding.handle(record(f"connection {n} lost", level=logging.WARNING, name="websockets.server"))
    assert len(written.lines) == LIMITS.burst
    # As soon as the cap allows a line, the count of the rest.
    timers.advance(1.0)
    held = written.lines[-1]
    assert held["held_back"] == 97
    assert held["level"] == "WARNING"
    assert "97 library log lines (websockets.server) held back" in held["text"]
    # Any 20 s of such a flood: at most the burst and a line a second.
    for n in range(20 * 50):
        folding.handle(record(f"other {n}", name=f"lib{n % 3}"))
        timers.advance(0.02)
    timers.advance(20.0)
    times = [line["at"] for line in written.lines]
    for start in times:
        assert sum(start <= at < start + 1.0 for at in times) <= LIMITS.burst + LIMITS.per_second
    flooded = sum(line["held_back"] or 0 for line in written.lines[4:])
    shown = len([line for line in written.lines[4:] if line["held_back"] is None])
    assert flooded + shown == 20 * 50


def records_told(lines: list[dict[str, Any]]) -> int:
    """How many records the lines stand for: one each, or the count a summary gives."""
    return sum(line["repeated"] or line["held_back"] or 1 for line in lines)


def test_summaries_the_cap_holds_wake_the_handler_only_when_they_can_be_written(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    """Five templates at 20 records a second for 25 s: their intervals end together, the cap lets
    a line out a second, and the summaries waiting for it do not wake the handler in between."""
    templates = [f"template {n} failed: %s" for n in range(5)]
    for tick in range(25 * 20):
        for template in templates:
            folding.handle(record(template, tick))
        timers.advance(0.05)
    timers.advance(60.0)
    # Every wake-up wrote a line, and none was planned for "now".
    assert [(delay, lines) for delay, lines in timers.wakes if delay <= 0 or lines == 0] == []
    assert len(timers.wakes) <= len(written.lines)
    # Every record is told, once the cap let the last summary out; then nothing is planned.
    assert records_told(written.lines) == 25 * 20 * 5
    assert timers.pending == []
    times = [line["at"] for line in written.lines]
    for start in times:
        assert sum(start <= at < start + 1.0 for at in times) <= LIMITS.burst + LIMITS.per_second


def test_an_interval_that_ends_while_the_cap_is_empty_waits_for_the_next_token(
    clock: Clock, written: Written, timers: Timers
) -> None:
    """The interval ends at 0.2 s, the cap has a token again at 1 s: one wake-up then, not thousands."""
    folding = FoldingHandler(
        written, FoldingLimits(interval=0.2, burst=1, per_second=1.0), clock=clock, schedule=timers.schedule
    )
    start = clock.now
    folding.handle(record(CONNECT, 1, "refused"))
    folding.handle(record(CONNECT, 2, "refused"))
    folding.handle(record(METADATA, [1]))
    timers.advance(5.0)
    assert [(line["at"] - start, line["repeated"], line["held_back"]) for line in written.lines] == [
        (0.0, None, None),
        (1.0, 1, None),
        (2.0, None, 1),
    ]
    assert timers.wakes == [(1.0, 1), (1.0, 1)]
    assert timers.pending == []


class Collected(logging.Handler):
    """The records written, and an event set once there are `wanted` of them."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.wanted = wanted
        self.done = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if len(self.records) >= self.wanted:
            self.done.set()


async def test_on_the_event_loop_no_wake_up_comes_too_early_to_write_its_line() -> None:
    """The loop's timers and the cap's refill time are computed apart, in floating point: a wake-up
    a hair early must still write its line rather than plan another for the same instant."""
    loop = asyncio.get_running_loop()
    collected = Collected(wanted=3)
    wakes: list[tuple[float, int]] = []

    def schedule(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        def wake() -> None:
            before = len(collected.records)
            callback()
            wakes.append((delay, len(collected.records) - before))

        return loop.call_later(delay, wake)

    folding = FoldingHandler(
        collected, FoldingLimits(interval=0.01, burst=1, per_second=30.0), schedule=schedule
    )
    # One template written and repeated twice; four more held back by the cap, three records each.
    for n in range(5):
        for attempt in range(3):
            folding.handle(record(f"template {n} failed: %s", attempt))
    async with asyncio.timeout(scaled(5)):
        await collected.done.wait()
    repeated, held_back = (
        getattr(collected.records[i], name) for i, name in ((1, "repeated"), (2, "held_back"))
    )
    assert (repeated, held_back) == (2, 12)
    assert [lines for _, lines in wakes] == [1, 1]


def test_a_summary_names_no_connection_the_first_line_keeps_its_own(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    """Records from several connections fold into one summary: it is written in an empty context."""
    websocket = type("Connection", (), {"id": uuid.uuid4()})()
    with structlog.contextvars.bound_contextvars(connection_id="abc"):
        for _ in range(5):
            folding.handle(record("keepalive ping failed", websocket=websocket, name="websockets.server"))
        timers.advance(10.0)
    first, summary = written.lines
    assert (first["context"], first["websocket"]) == ({"connection_id": "abc"}, True)
    assert (summary["context"], summary["websocket"], summary["repeated"]) == ({}, False, 4)


def test_closing_writes_the_counts_still_pending(
    folding: FoldingHandler, written: Written, timers: Timers
) -> None:
    for _ in range(7):
        folding.handle(record(CONNECT, 1, "refused"))
    timers.advance(2.5)
    folding.close()
    assert (
        written.lines[-1]["text"]
        == "Unable connect to node with id 1: refused (repeated 6 times in the last 2.5 s)"
    )


@pytest.mark.usefixtures("restored_logging")
def test_the_configured_log_folds_library_records_into_json_lines_with_their_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through configure_logging: one JSON line for a flood, and a websockets record names its connection."""
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    configure_logging("info", "json")
    for n in range(50):
        logging.getLogger("aiokafka").error(CONNECT, n, "refused")
    websocket = type("Connection", (), {"id": uuid.UUID("0123456789abcdef0123456789abcdef")})()
    logging.getLogger("websockets.server").warning("skipped broadcast", extra={"websocket": websocket})
    logging.getLogger().handlers[0].close()
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines] == [
        ("aiokafka", "error", "Unable connect to node with id 0: refused"),
        ("websockets.server", "warning", "skipped broadcast"),
        ("aiokafka", "error", lines[2]["event"]),
    ]
    assert lines[1]["connection_id"] == "0123456789ab"
    assert lines[2]["repeated"] == 49
    assert lines[2]["event"].startswith("Unable connect to node with id 49: refused (repeated 49 times")
    assert "connection_id" not in lines[2]
