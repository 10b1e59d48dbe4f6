"""The client's one status line: while not connected, when it tries again, which attempt, and why."""

from __future__ import annotations

import time
from collections.abc import Callable

from minimess.app.visible_text import escape_text


class ConnectionStatus:
    """What the status line says, from what the link reported; empty while connected.

    The countdown is read from `clock` whenever the line is, so that a display redrawing it
    shows the time left without being told again.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Reports of no connection since the last success (or the start): the drop and the failed
        # attempts after it. The next attempt is the failures-th.
        self._failures = 0
        # Why the last one failed, escaped: it may be the server's text.
        self._reason = ""
        # When the next attempt starts (clock time); None while connected.
        self._retry_at: float | None = None

    @property
    def connected(self) -> bool:
        return self._retry_at is None

    def up(self) -> None:
        self._failures = 0
        self._retry_at = None

    def down(self, reason: str, retry_in: float) -> None:
        self._failures += 1
        self._reason = escape_text(reason)
        self._retry_at = self._clock() + retry_in

    def retrying_now(self) -> None:
        if self._retry_at is not None:
            self._retry_at = self._clock()

    def line(self) -> str:
        if self._retry_at is None:
            return ""
        attempt = f"attempt {self._failures}, {self._reason}"
        remaining = self._retry_at - self._clock()
        # Rounded as shown: "in 0.0 s" would read as stuck.
        if remaining < 0.05:
            return f"reconnecting now ({attempt})"
        return f"reconnecting in {remaining:.1f} s ({attempt})"
