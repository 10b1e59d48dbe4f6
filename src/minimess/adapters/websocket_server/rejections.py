"""Refused requests in the log: each one at debug, and at info at most once a second with a count."""

from __future__ import annotations

import structlog
from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.websocket_server.log_throttle import ThrottledEvent

log = structlog.get_logger(__name__)


class RejectionLog:
    """Says why requests were refused without letting anyone who sends bad requests flood the log.

    Every refusal is a `request_rejected` line at debug (`-v`), with what was wrong; at info,
    `requests_rejected` says it at once, then at most once a second while refusals go on, with
    how many there were and the latest one's status and reason. A bad request costs its sender
    no more than a TCP connection, so one line each would let anyone write the log at line rate.
    """

    def __init__(self, summary: ThrottledEvent | None = None) -> None:
        self._summary = ThrottledEvent("requests_rejected", level="info") if summary is None else summary

    def record(self, connection: ServerConnection, status: int, reason: str, **fields: object) -> None:
        log.debug(
            "request_rejected",
            connection_id=connection_id(connection),
            status=status,
            reason=reason,
            **fields,
        )
        self._summary.record(status=status, reason=reason)
