"""The token bucket that limits how many frames per second one client may send."""

from __future__ import annotations

from minimess.adapters.websocket_server.rate_limit import TokenBucket

# Steps and rates below are binary fractions, so the token arithmetic is exact.


class FakeMonotonic:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _allowed(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.allow() for _ in range(attempts))


def test_a_full_bucket_allows_a_burst_of_rate_events() -> None:
    bucket = TokenBucket(4, FakeMonotonic())
    assert [bucket.allow() for _ in range(5)] == [True] * 4 + [False]


def test_one_token_comes_back_every_1_over_rate_seconds_and_refusals_cost_none() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(4, clock)
    _allowed(bucket, 4)
    outcomes = []
    for _ in range(8):
        clock.now += 0.0625
        outcomes.append(bucket.allow())
    assert outcomes == [False, False, False, True] * 2
    clock.now += 0.75
    assert _allowed(bucket, 10) == 3


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(4, clock)
    clock.now += 3600
    assert _allowed(bucket, 100) == 4


def test_a_sustained_flow_at_the_rate_is_never_refused() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(8, clock)
    _allowed(bucket, 8)
    for _ in range(100):
        clock.now += 0.125
        assert bucket.allow()


def test_a_rate_below_one_still_allows_one_event_at_a_time() -> None:
    """At half an event per second the burst is one event, and the next comes two seconds later."""
    clock = FakeMonotonic()
    bucket = TokenBucket(0.5, clock)
    assert [bucket.allow(), bucket.allow()] == [True, False]
    clock.now += 1.875
    assert not bucket.allow()
    clock.now += 0.125
    assert bucket.allow()


def test_rate_zero_means_unlimited() -> None:
    bucket = TokenBucket(0, FakeMonotonic())
    assert _allowed(bucket, 10_000) == 10_000
