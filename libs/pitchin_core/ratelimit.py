"""Token buckets by key (a client address, an email), for the doors anyone may knock on.

In this process's memory: each replica allows the whole rate, which is enough to stop a
script filling an event or mailing strangers (a shared limit would cost a round trip to
PostgreSQL per request). Memory is bounded: keys unseen for a whole refill period are
forgotten, which is exact (their bucket would be full again by then), and at most `keep`
keys are held (the least recently used go first).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(frozen=True)
class Limit:
    """`count` requests per `seconds`, any `count` of them at once."""

    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


class Throttle:
    def __init__(self, limit: Limit, *, keep: int = 100_000) -> None:
        self.limit = limit
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(maxsize=keep, ttl=limit.seconds)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed (and counted); otherwise the seconds until one more request would be."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.limit.count), now))
        tokens = min(float(self.limit.count), tokens + (now - last) * self.limit.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return math.ceil((1.0 - tokens) / self.limit.rate * 10) / 10
