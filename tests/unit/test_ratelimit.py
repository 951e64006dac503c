from __future__ import annotations

from keyturn.services.ratelimit import RateLimiter


def test_bucket_allows_the_burst_then_paces() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, burst=10, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(30):
        limiter.acquire()
    # 10 free, then 20 more at 10/s: about 2 s of waiting in total
    assert 1.9 <= sum(slept) <= 2.1
