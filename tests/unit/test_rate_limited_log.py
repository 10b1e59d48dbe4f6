"""Clients over the rate limit: a debug line each, at info a line at once, then a count once a second."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import structlog
from structlog.testing import CapturingLogger, capture_logs
from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket_server.log_throttle import ThrottledEvent
from minimess.adapters.websocket_server.rate_limited_log import RateLimitedLog
from tests.timeouts import scaled
from tests.unit.test_log_throttle import Timers, lines


def connection() -> ServerConnection:
    return cast(ServerConnection, SimpleNamespace(id=uuid.uuid4()))


def rate_limited_log() -> tuple[RateLimitedLog, CapturingLogger, Timers]:
    logger, timers = CapturingLogger(), Timers()
    summary = ThrottledEvent("clients_rate_limited", level="info", schedule=timers.schedule, logger=logger)
    return RateLimitedLog(summary), logger, timers


def test_each_connection_over_the_limit_is_a_debug_line_naming_it() -> None:
    rate_limited, _, _ = rate_limited_log()
    flooder = connection()
    with capture_logs() as captured:
        rate_limited.record(flooder, "dave", 20.0)
    assert captured == [
        {
            "event": "client_rate_limited",
            "log_level": "debug",
            "connection_id": flooder.id.hex[:12],
            "uid": "dave",
            "rate_limit": 20.0,
        }
    ]


def test_clients_going_over_the_limit_in_a_loop_are_one_info_line_at_once_then_one_with_the_count() -> None:
    rate_limited, logger, timers = rate_limited_log()
    with capture_logs():
        for n in range(500):
            rate_limited.record(connection(), f"flooder-{n}", 20.0)
    first: dict[str, Any] = {"count": 1, "uid": "flooder-0", "rate_limit": 20.0}
    assert lines(logger) == [("info", first)]
    timers.elapse()
    assert lines(logger) == [
        ("info", first),
        ("info", {"count": 499, "uid": "flooder-499", "rate_limit": 20.0}),
    ]
    # Quiet for an interval: the next one is said at once again.
    timers.elapse()
    rate_limited.record(connection(), "later", 20.0)
    assert lines(logger)[2:] == [("info", {"count": 1, "uid": "later", "rate_limit": 20.0})]


class ContextLogger:
    """Keeps each info line with the log context it was written in; set `done` at the second."""

    def __init__(self) -> None:
        self.lines: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.done = asyncio.Event()

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((fields, structlog.contextvars.get_contextvars()))
        if len(self.lines) == 2:
            self.done.set()


async def test_the_info_lines_name_no_connection_though_a_connection_wrote_them() -> None:
    """Said from a connection's task, with its id bound: the lines stand for several connections."""
    logger = ContextLogger()
    rate_limited = RateLimitedLog(
        ThrottledEvent("clients_rate_limited", level="info", interval=0.01, logger=logger)
    )
    for n in range(3):
        with structlog.contextvars.bound_contextvars(connection_id=f"connection-{n}"):
            rate_limited.record(connection(), f"flooder-{n}", 20.0)
    async with asyncio.timeout(scaled(5)):
        await logger.done.wait()
    assert [(fields["count"], context) for fields, context in logger.lines] == [(1, {}), (2, {})]
