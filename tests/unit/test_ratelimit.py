"""Fixed-window rate limits with the numbers for the X-RateLimit-* headers."""

import pytest

from dployr.auth.ratelimit import RateLimiter
from dployr.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_down_then_refuses_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(3, 60, clock)
    assert [limiter.hit("a").remaining for _ in range(3)] == [2, 1, 0]
    clock.now += 10
    with pytest.raises(RateLimited) as refused:
        limiter.hit("a")
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "50"
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    assert refused.value.headers["X-RateLimit-Reset"] == "1060"


def test_keys_are_independent_and_windows_reset():
    clock = Clock()
    limiter = RateLimiter(1, 60, clock)
    limiter.hit("a")
    assert limiter.hit("b").remaining == 0
    clock.now += 60
    quota = limiter.hit("a")
    assert (quota.limit, quota.remaining, quota.reset) == (1, 0, 1120)
