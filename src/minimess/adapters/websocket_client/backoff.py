"""Reconnect delays: exponential backoff with full jitter, so clients do not return in a herd."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The n-th delay is uniform in [0, min(cap, first * 2**(n-1))]; reset() after a success."""

    def __init__(self, first: float, cap: float, uniform: Callable[[float, float], float] = random.uniform):
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first <= cap, got first={first} cap={cap}")
        self._first = first
        self._cap = cap
        self._uniform = uniform
        self._failures = 0

    def next_delay(self) -> float:
        bound = min(self._cap, self._first * 2**self._failures)
        # Stop growing once at the cap, so the exponent cannot overflow after a long outage.
        if bound < self._cap:
            self._failures += 1
        return self._uniform(0.0, bound)

    def reset(self) -> None:
        self._failures = 0
