"""The token bucket that limits how many frames per second one client may send."""

from __future__ import annotations

from minimess.adapters.websocket.rate_limit import TokenBucket

# Steps and rates below are binary fractions, so the token arithmetic is exact.


class FakeMonotonic:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _allowed(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.allow() for _ in range(attempts))


def test_a_full_bucket_allows_a_burst_of_rate_events() -> None:
    """At rate 4, four events pass at once and the fifth is refused."""
    bucket = TokenBucket(4, FakeMonotonic())
    assert [bucket.allow() for _ in range(5)] == [True] * 4 + [False]


def test_tokens_refill_at_rate_per_second() -> None:
    """After emptying, one token comes back every 1/rate seconds, not sooner."""
    clock = FakeMonotonic()
    bucket = TokenBucket(4, clock)
    _allowed(bucket, 4)
    clock.advance(0.125)
    assert not bucket.allow()
    clock.advance(0.125)
    assert bucket.allow()
    assert not bucket.allow()
    clock.advance(0.75)
    assert _allowed(bucket, 10) == 3


def test_refused_attempts_do_not_use_up_tokens() -> None:
    """Asking while empty does not push the next token further away."""
    clock = FakeMonotonic()
    bucket = TokenBucket(4, clock)
    _allowed(bucket, 4)
    outcomes = []
    for _ in range(4):
        clock.advance(0.0625)
        outcomes.append(bucket.allow())
    assert outcomes == [False, False, False, True]


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    """However long the client was quiet, the next burst is at most `rate` events."""
    clock = FakeMonotonic()
    bucket = TokenBucket(4, clock)
    clock.advance(3600)
    assert _allowed(bucket, 100) == 4


def test_a_sustained_flow_at_the_rate_is_allowed() -> None:
    """A client sending exactly `rate` frames per second, evenly spaced, is never refused."""
    clock = FakeMonotonic()
    bucket = TokenBucket(8, clock)
    _allowed(bucket, 8)
    for _ in range(100):
        clock.advance(0.125)
        assert bucket.allow()


def test_a_rate_below_one_still_allows_one_event() -> None:
    """At half an event per second the burst is one event, and the next comes two seconds later."""
    clock = FakeMonotonic()
    bucket = TokenBucket(0.5, clock)
    assert bucket.allow()
    assert not bucket.allow()
    clock.advance(1.875)
    assert not bucket.allow()
    clock.advance(0.125)
    assert bucket.allow()


def test_rate_zero_means_unlimited() -> None:
    """A rate of 0 allows every event, however many and however fast."""
    bucket = TokenBucket(0, FakeMonotonic())
    assert _allowed(bucket, 10_000) == 10_000
