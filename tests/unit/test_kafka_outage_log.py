"""The Kafka link's log: a line when it is lost, a reminder a minute while it stays lost, a line when back."""

from __future__ import annotations

from typing import Any

from structlog.testing import CapturingLogger

from minimess.adapters.kafka.outage_log import OutageLog
from minimess.adapters.kafka.settings import KafkaSettings

SETTINGS = KafkaSettings(kafka_bootstrap="kafka-1:9092", kafka_topic="chat")
WHERE = {"bootstrap": "kafka-1:9092", "topic": "chat"}


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def outage_log() -> tuple[OutageLog, CapturingLogger, Clock]:
    logger, clock = CapturingLogger(), Clock()
    return OutageLog(SETTINGS, clock=clock, reminder_interval=60.0, logger=logger), logger, clock


def lines(logger: CapturingLogger) -> list[tuple[str, str, dict[str, Any]]]:
    return [(call.method_name, call.args[0], call.kwargs) for call in logger.calls]


def test_a_first_connection_is_said_without_an_outage() -> None:
    outage, logger, _ = outage_log()
    outage.connected()
    outage.reachable()
    assert lines(logger) == [("info", "kafka_connected", WHERE)]


def test_an_outage_is_one_line_then_a_reminder_a_minute_with_attempts_and_downtime() -> None:
    outage, logger, clock = outage_log()
    outage.connected()
    # A probe a second for two and a half minutes.
    for _ in range(150):
        outage.failed(ConnectionRefusedError(111, "Connection refused"))
        clock.now += 1.0
    error = repr(ConnectionRefusedError(111, "Connection refused"))
    assert lines(logger)[1:] == [
        ("warning", "kafka_unavailable", {**WHERE, "error": error}),
        (
            "warning",
            "kafka_still_unavailable",
            {**WHERE, "error": error, "down_seconds": 60.0, "attempts": 61},
        ),
        (
            "warning",
            "kafka_still_unavailable",
            {**WHERE, "error": error, "down_seconds": 120.0, "attempts": 121},
        ),
    ]
    assert outage.down
    outage.reachable()
    assert lines(logger)[-1] == (
        "info",
        "kafka_reachable_again",
        {**WHERE, "down_seconds": 150.0, "attempts": 150},
    )
    assert not outage.down
    # Back for good: the next probes say nothing; the next loss is a new outage, said at once.
    outage.reachable()
    outage.failed(TimeoutError())
    assert [name for _, name, _ in lines(logger)[-2:]] == ["kafka_reachable_again", "kafka_unavailable"]


def test_clients_started_after_an_outage_say_how_long_it_was() -> None:
    outage, logger, clock = outage_log()
    outage.failed(OSError("Unable to bootstrap"))
    clock.now += 12.34
    outage.failed(OSError("Unable to bootstrap"))
    outage.connected()
    assert lines(logger)[-1] == ("info", "kafka_connected", {**WHERE, "down_seconds": 12.3, "attempts": 2})
    # Said once: a probe that works next has no outage to end.
    outage.reachable()
    assert len(logger.calls) == 2
