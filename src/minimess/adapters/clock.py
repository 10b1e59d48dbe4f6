"""The system clock, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Reads the real time; the default Clock of a server."""

    def now(self) -> datetime:
        return datetime.now(UTC)
