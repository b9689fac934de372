"""Fixed-window rate limits kept in memory, with the numbers for the X-RateLimit-* headers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from dployr.errors import RateLimited

_SWEEP_EVERY = 10_000  # drop expired windows after this many new keys, so memory stays bounded


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset: int  # unix seconds when the window resets

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Counts hits per key in windows of `window` seconds aligned to the first hit."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._new_keys = 0

    def hit(self, key: str) -> Quota:
        """Count one request; raise RateLimited (with headers) when the window is used up."""
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count == 0:
            self._sweep(now)
        reset = math.ceil(start + self.window)
        if count >= self.limit:
            quota = Quota(self.limit, 0, reset)
            retry_after = max(1, reset - math.floor(now))
            raise RateLimited(
                f"Rate limit of {self.limit} requests exceeded; retry in {retry_after} s",
                headers={**quota.headers(), "Retry-After": str(retry_after)},
            )
        self._windows[key] = (start, count + 1)
        return Quota(self.limit, self.limit - count - 1, reset)

    def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._new_keys += 1
        if self._new_keys < _SWEEP_EVERY:
            return
        self._new_keys = 0
        self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window}


@dataclass
class RateLimits:
    authenticated: RateLimiter
    anonymous: RateLimiter
    login: RateLimiter

    @classmethod
    def per_config(cls, authenticated: int, anonymous: int, login: int) -> RateLimits:
        return cls(
            authenticated=RateLimiter(authenticated, 3600),
            anonymous=RateLimiter(anonymous, 3600),
            login=RateLimiter(login, 15 * 60),
        )
