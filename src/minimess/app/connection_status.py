"""The client's one status line: while not connected, when it tries again, which attempt, and why."""

from __future__ import annotations

import time
from collections.abc import Callable

from minimess.app.visible_text import escape_text

# Less than this left of a wait is shown as over: "in 0.0 s" would read as stuck.
_OVER = 0.05


class ConnectionStatus:
    """What the status line says, from what the link reported; empty while connected.

    The countdown is read from `clock` whenever the line is, so that a display redrawing it
    shows the time left without being told again. Once the wait is over the line says the attempt
    is under way, not that it starts: a connection attempt may take the handshake's timeout.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # The attempt under way, or the next one while waiting. The client's first connection is
        # attempt 1, and so is the first attempt to get a dropped connection back.
        self._attempt = 1
        # Why the last one failed, escaped: it may be the server's text.
        self._reason = ""
        # When the next attempt starts (clock time), since a report of no connection; None while
        # connected, and before anything was reported.
        self._retry_at: float | None = None

    @property
    def connected(self) -> bool:
        return self._retry_at is None

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def waiting(self) -> bool:
        """Whether the next attempt is still to come: what retrying now would cut short."""
        return self._retry_at is not None and self._retry_at - self._clock() >= _OVER

    def up(self) -> None:
        # The next report is a drop, and the attempt after it the first to get the connection back.
        self._attempt = 0
        self._retry_at = None

    def down(self, reason: str, retry_in: float) -> None:
        self._attempt += 1
        self._reason = escape_text(reason)
        self._retry_at = self._clock() + retry_in

    def retrying_now(self) -> None:
        if self._retry_at is not None:
            self._retry_at = self._clock()

    def line(self) -> str:
        if self._retry_at is None:
            return ""
        attempt = f"attempt {self._attempt}, {self._reason}"
        remaining = self._retry_at - self._clock()
        if remaining < _OVER:
            return f"connecting now ({attempt})"
        return f"reconnecting in {remaining:.1f} s ({attempt})"
