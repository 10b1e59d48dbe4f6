"""Backoff: full-jitter reconnect delays, their doubling bounds, the cap and the reset."""

from __future__ import annotations

import math
import statistics

import pytest

from minimess.adapters.websocket.backoff import Backoff


class RecordingUniform:
    """A stand-in for random.uniform that records its bounds and returns the upper one."""

    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.bounds.append((low, high))
        return high


def _uppers(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_the_nth_delay_is_drawn_from_zero_to_first_times_two_to_the_n_minus_1() -> None:
    """Each delay is uniform(0, min(cap, first * 2**(n-1))): 0.5, 1, 2, 4, ... until the cap."""
    uniform = RecordingUniform()
    backoff = Backoff(first=0.5, cap=30, uniform=uniform)
    delays = _uppers(backoff, 10)
    expected = [min(30.0, 0.5 * 2 ** (n - 1)) for n in range(1, 11)]
    assert uniform.bounds == [(0.0, bound) for bound in expected]
    assert delays == expected
    assert expected[:7] == [0.5, 1, 2, 4, 8, 16, 30]


def test_the_delay_is_what_uniform_returns() -> None:
    """The jitter is the injected draw itself, not the bound."""
    backoff = Backoff(first=1, cap=10, uniform=lambda low, high: (low + high) / 4)
    assert [backoff.next_delay() for _ in range(3)] == [0.25, 0.5, 1.0]


def test_once_at_the_cap_the_bound_stays_at_the_cap() -> None:
    """After many failures the bound is still exactly the cap, without overflowing."""
    uniform = RecordingUniform()
    backoff = Backoff(first=0.001, cap=7, uniform=uniform)
    _uppers(backoff, 5000)
    assert uniform.bounds[-1] == (0.0, 7)
    first_at_cap = next(i for i, (_, high) in enumerate(uniform.bounds) if high == 7)
    assert all(high == 7 for _, high in uniform.bounds[first_at_cap:])
    # 0.001 * 2**12 = 4.096 < 7 <= 0.001 * 2**13: the 14th delay is the first at the cap.
    assert first_at_cap == 13


def test_reset_starts_again_from_the_first_bound() -> None:
    """After reset() (a successful connect) the next delay is bounded by `first` again."""
    uniform = RecordingUniform()
    backoff = Backoff(first=0.5, cap=30, uniform=uniform)
    assert _uppers(backoff, 4) == [0.5, 1, 2, 4]
    backoff.reset()
    assert _uppers(backoff, 3) == [0.5, 1, 2]


def test_reset_after_reaching_the_cap_starts_again() -> None:
    """Even after a long outage, one success brings the delays back down."""
    backoff = Backoff(first=1, cap=4, uniform=RecordingUniform())
    assert _uppers(backoff, 6) == [1, 2, 4, 4, 4, 4]
    backoff.reset()
    assert _uppers(backoff, 2) == [1, 2]


def test_first_equal_to_cap_is_allowed_and_never_grows() -> None:
    """first == cap gives the same bound every time."""
    backoff = Backoff(first=3, cap=3, uniform=RecordingUniform())
    assert _uppers(backoff, 4) == [3, 3, 3, 3]


@pytest.mark.parametrize(
    ("first", "cap"),
    [(0, 30), (-0.5, 30), (5, 1), (0.5, 0), (0.5, -1), (math.nan, 30), (0.5, math.nan)],
)
def test_invalid_first_or_cap_is_rejected(first: float, cap: float) -> None:
    """first must be positive and no more than cap; the error names both."""
    with pytest.raises(ValueError, match="first") as raised:
        Backoff(first=first, cap=cap)
    assert "cap" in str(raised.value)


def test_with_the_real_random_the_first_delays_lie_in_range_and_are_spread() -> None:
    """1000 first delays from random.uniform all lie in [0, first], and are not all alike."""
    first = 0.5
    draws = []
    for _ in range(1000):
        backoff = Backoff(first=first, cap=30)
        draws.append(backoff.next_delay())
    assert all(0 <= delay <= first for delay in draws)
    assert len(set(draws)) > 900
    # Uniform on [0, 0.5]: both halves are well populated, and the mean is near 0.25.
    assert min(draws) < first / 10
    assert max(draws) > first * 9 / 10
    assert 0.2 < statistics.fmean(draws) < 0.3


def test_with_the_real_random_later_delays_respect_their_bounds() -> None:
    """With the real random, every n-th delay stays within its bound up to the cap."""
    backoff = Backoff(first=0.5, cap=3)
    for n in range(1, 20):
        assert 0 <= backoff.next_delay() <= min(3, 0.5 * 2 ** (n - 1))
