"""Backoff: full-jitter reconnect delays, their doubling bounds, the cap and the reset."""

from __future__ import annotations

import math

import pytest

from minimess.adapters.websocket_client.backoff import Backoff


def _upper(low: float, high: float) -> float:
    """A draw that always gives the bound, so that delays show the bounds."""
    assert low == 0.0
    return high


def _delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


@pytest.mark.parametrize(
    ("first", "cap", "bounds"),
    [
        (0.5, 30, [0.5, 1, 2, 4, 8, 16, 30, 30]),
        (1, 4, [1, 2, 4, 4, 4]),
        (3, 3, [3, 3, 3]),
    ],
)
def test_the_nth_delay_is_drawn_from_zero_to_first_times_two_to_the_n_minus_1_up_to_the_cap(
    first: float, cap: float, bounds: list[float]
) -> None:
    assert _delays(Backoff(first, cap, uniform=_upper), len(bounds)) == bounds


def test_the_delay_is_the_draw_not_the_bound() -> None:
    backoff = Backoff(first=1, cap=10, uniform=lambda low, high: (low + high) / 4)
    assert _delays(backoff, 3) == [0.25, 0.5, 1.0]


def test_after_a_long_outage_the_bound_is_still_the_cap() -> None:
    """Thousands of failures do not overflow the exponent."""
    backoff = Backoff(first=0.001, cap=7, uniform=_upper)
    # 0.001 * 2**12 = 4.096 < 7 <= 0.001 * 2**13: the 14th delay is the first at the cap.
    assert _delays(backoff, 5000)[12:] == [4.096] + [7] * (5000 - 13)


def test_reset_starts_again_from_the_first_bound_even_after_the_cap() -> None:
    backoff = Backoff(first=1, cap=4, uniform=_upper)
    assert _delays(backoff, 2) == [1, 2]
    backoff.reset()
    assert _delays(backoff, 6) == [1, 2, 4, 4, 4, 4]
    backoff.reset()
    assert _delays(backoff, 2) == [1, 2]


@pytest.mark.parametrize(
    ("first", "cap"),
    [(0, 30), (-0.5, 30), (5, 1), (0.5, 0), (0.5, -1), (math.nan, 30), (0.5, math.nan)],
)
def test_first_must_be_positive_and_at_most_cap(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"first=.* cap="):
        Backoff(first=first, cap=cap)
