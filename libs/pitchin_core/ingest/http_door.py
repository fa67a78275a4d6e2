"""What the HTTP door (`POST /v1/ingest` on signups) limits: request size, batch size, rate per source.

Publishers' Standard Webhooks signatures are checked with `pitchin_core.signing.verify_webhook`.
"""

from __future__ import annotations

import math

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 500


class RateLimiter:
    """A token bucket per source, in this process's memory: each replica allows the registered rate.

    Simple and enough while signups runs one or two replicas; a shared limit would need
    PostgreSQL or Redis and is not worth a round trip per request here.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, source: str, count: int, rate: float, burst: int, now: float) -> float:
        """0 when allowed; otherwise the seconds to wait before `count` tokens are there."""
        tokens, last = self._buckets.get(source, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if count > burst:
            self._buckets[source] = (tokens, now)
            return math.inf
        if tokens >= count:
            self._buckets[source] = (tokens - count, now)
            return 0.0
        self._buckets[source] = (tokens, now)
        return (count - tokens) / rate
