"""Open log-follow streams per user, capped: each holds an engine connection or a poller."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

from dployr.errors import RateLimited

RETRY_AFTER = 5  # seconds: a slot frees as soon as one of the user's streams is closed


class FollowSlots:
    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: collections.Counter[str] = collections.Counter()

    def open_count(self, user_id: str) -> int:
        return self._open[user_id]

    @contextlib.contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """One of the user's slots for the life of a stream; 429 when all are taken."""
        if self._open[user_id] >= self.per_user:
            raise RateLimited(
                f"You have {self.per_user} log streams open (service and deployment logs "
                "with follow=true count alike), the most a user may; close one and retry",
                details={"reason": "too many open log streams", "limit": self.per_user},
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        self._open[user_id] += 1
        try:
            yield
        finally:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]
