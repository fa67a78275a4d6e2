from __future__ import annotations

from pitchin_core.ratelimit import Limit, Throttle


def test_a_bucket_allows_its_burst_then_says_when_to_come_back() -> None:
    throttle = Throttle(Limit(count=3, seconds=60))
    assert [throttle.take("203.0.113.9", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = throttle.take("203.0.113.9", now=100.0)
    assert 19.9 <= wait <= 20.1  # one request's worth refills in 60/3 seconds
    assert throttle.take("198.51.100.7", now=100.0) == 0.0  # others are not held back
    assert throttle.take("203.0.113.9", now=120.5) == 0.0


def test_memory_stays_bounded() -> None:
    throttle = Throttle(Limit(count=1, seconds=60), keep=10)
    for i in range(1000):
        throttle.take(f"10.0.{i // 256}.{i % 256}", now=1.0)
    assert len(throttle._buckets) == 10
