"""The Metrics port: what a server reports to its operators as it happens, and the figures read back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs


class Metrics(Protocol):
    """Counts and times events of connections and publishes, one call per event.

    Figures already counted elsewhere (connections open, deliveries, recoveries, the bus's own
    counters) are not reported here: the metrics read them when scraped, so that the delivery
    path pays nothing for them.
    """

    def connection_opened(self) -> None:
        """A WebSocket connection was accepted and its session started."""
        ...

    def connection_closed(self, code: int, frames_dropped: int) -> None:
        """A connection ended with this close code (1006 when no close frame came back), and
        `frames_dropped` of the frames pushed to it never reached its socket."""
        ...

    def publish_answered(self, result: str, seconds: float) -> None:
        """A publish was answered: `ack`, or the error code that refused it (forbidden, id_reused,
        broker_unavailable, publish_timeout), `seconds` after its frame was read."""
        ...

    def error_frame_sent(self, code: str) -> None:
        """An `error` frame with this protocol error code was taken for a client's socket."""
        ...

    def slow_consumer_closed(self) -> None:
        """A connection was closed because its client did not keep up (4000)."""
        ...

    def inactive_closed(self) -> None:
        """A connection was closed because its client stopped answering pings."""
        ...

    def internal_error(self) -> None:
        """A bug met one connection, which was closed with 1011."""
        ...

    def fanned_out(self, seconds: float) -> None:
        """One message from the bus reached the last local socket `seconds` after the bus delivered it."""
        ...


@attrs.frozen(kw_only=True)
class MetricsSummary:
    """A server's main figures at one moment, as its metrics had them: what /stats shows."""

    # WebSocket connections open now.
    connections: int
    # Message frames pushed to local subscribers, one per subscriber per message.
    deliveries: int
    # Frames of any kind pushed to connections that closed without them reaching their sockets.
    frames_dropped: int
    connections_opened: int
    connections_closed: int
    # Publishes acked.
    messages_published: int
    slow_consumer_closes: int
    inactive_closes: int
    # Error frames sent, and of them those for the rate limit.
    error_frames: int
    rate_limited: int
    internal_errors: int
    repeats_skipped: int
    # Subscriptions with a position, and those of them that could not be recovered whole.
    recoveries: int
    recoveries_failed: int
    history_messages: int
    # The bus's own counters by name (undecodable_records, invalid_records, replays, reconnects);
    # empty for a bus that keeps none (the memory bus).
    broker: Mapping[str, int]
    # The process's CPU time so far and its resident memory now; None where they cannot be read.
    cpu_seconds: float | None
    rss_bytes: int | None


@attrs.frozen
class QueuedBytes:
    """What the open connections hold for their clients now: in all, and the most one holds."""

    total: int
    worst: int
