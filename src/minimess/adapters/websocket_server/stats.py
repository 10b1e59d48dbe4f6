"""Counters of what happened to a server's connections, served as JSON on /stats."""

from __future__ import annotations

import attrs


@attrs.define
class ServerStats:
    """Monotonic counters since the server started; only the event loop updates them."""

    connections_opened: int = 0
    connections_closed: int = 0
    messages_published: int = 0
    slow_consumer_closes: int = 0
    inactive_closes: int = 0
    error_frames: int = 0
    rate_limited: int = 0
    internal_errors: int = 0
