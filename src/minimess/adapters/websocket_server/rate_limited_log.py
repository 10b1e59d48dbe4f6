"""Clients over the rate limit in the log: each at debug, and at info at most once a second with a count."""

from __future__ import annotations

import contextvars

import structlog
from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.websocket_server.log_throttle import ThrottledEvent

log = structlog.get_logger(__name__)


class RateLimitedLog:
    """Says which clients went over `--rate-limit` without letting a client flood the log by doing so.

    A connection's first frame over the limit is a `client_rate_limited` line at debug (`-v`); at
    info, `clients_rate_limited` says it at once, then at most once a second while it goes on, with
    how many connections went over since and the latest one's uid. A handshake and a burst of
    frames are all it takes, so one line at info each would let a client that connects in a loop
    write the log at the rate it connects. How many frames each connection had dropped is on its
    `client_disconnected` line.
    """

    def __init__(self, summary: ThrottledEvent | None = None) -> None:
        self._summary = ThrottledEvent("clients_rate_limited", level="info") if summary is None else summary

    def record(self, connection: ServerConnection, uid: str, rate_limit: float) -> None:
        """`connection`, as `uid`, had its first frame dropped by a rate limit of `rate_limit`."""
        log.debug(
            "client_rate_limited", connection_id=connection_id(connection), uid=uid, rate_limit=rate_limit
        )
        # In an empty context: the summary (and the later ones its timer writes) stands for many
        # connections, so it must not take the `connection_id` bound in this one's.
        contextvars.Context().run(self._summary.record, uid=uid, rate_limit=rate_limit)
