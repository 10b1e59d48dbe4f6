"""A token bucket that keeps one client from flooding the server with frames."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` events per second on average, and bursts of up to `rate` at once.

    A rate of 0 allows everything.
    """

    def __init__(self, rate: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._monotonic = monotonic
        self._last = monotonic()

    def allow(self) -> bool:
        """Take one token if there is one."""
        if self._rate == 0:
            return True
        now = self._monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
