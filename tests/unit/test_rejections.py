"""Refused requests: a debug line each, and at info one line at once, then a count at most once a second."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

from structlog.testing import CapturingLogger, capture_logs
from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket_server.log_throttle import ThrottledEvent
from minimess.adapters.websocket_server.rejections import RejectionLog
from tests.unit.test_log_throttle import Timers, lines


def connection() -> ServerConnection:
    return cast(ServerConnection, SimpleNamespace(id=uuid.uuid4()))


def rejection_log() -> tuple[RejectionLog, CapturingLogger, Timers]:
    logger, timers = CapturingLogger(), Timers()
    summary = ThrottledEvent("requests_rejected", level="info", schedule=timers.schedule, logger=logger)
    return RejectionLog(summary), logger, timers


def test_every_refusal_is_a_debug_line_with_what_was_wrong() -> None:
    rejections, _, _ = rejection_log()
    refused = connection()
    with capture_logs() as captured:
        rejections.record(refused, 400, "invalid uid 'a b'", path="/subscribe/id:a b")
    assert captured == [
        {
            "event": "request_rejected",
            "log_level": "debug",
            "connection_id": refused.id.hex[:12],
            "status": 400,
            "reason": "invalid uid 'a b'",
            "path": "/subscribe/id:a b",
        }
    ]


def test_a_flood_of_refusals_is_one_info_line_at_once_then_one_with_the_count() -> None:
    rejections, logger, timers = rejection_log()
    with capture_logs():
        for n in range(500):
            rejections.record(connection(), 403, f"refusal {n}")
    first: dict[str, Any] = {"count": 1, "status": 403, "reason": "refusal 0"}
    assert lines(logger) == [("info", first)]
    timers.elapse()
    assert lines(logger) == [
        ("info", first),
        ("info", {"count": 499, "status": 403, "reason": "refusal 499"}),
    ]
