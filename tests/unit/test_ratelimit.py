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


def test_a_less_urgent_caller_waits_while_a_more_urgent_one_does() -> None:
    """Two threads: the urgent one is parked in the limiter (no token yet); the other, with
    a token available, must not take it before the urgent caller has had its own."""
    import threading
    import time

    now = [0.0]
    order: list[str] = []
    urgent_waiting = threading.Event()
    release = threading.Event()

    def sleep(seconds: float) -> None:
        if threading.current_thread().name == "urgent" and not release.is_set():
            urgent_waiting.set()
            release.wait(timeout=30)
        else:
            time.sleep(0.001)  # fake time, but don't spin the CPU
        now[0] += seconds

    limiter = RateLimiter(1, burst=1, monotonic=lambda: now[0], sleep=sleep)
    limiter.acquire()  # the bucket is empty now

    def urgent() -> None:
        limiter.acquire(priority=0)
        order.append("urgent")

    def later() -> None:
        limiter.acquire(priority=3)
        order.append("later")

    first = threading.Thread(target=urgent, name="urgent")
    first.start()
    assert urgent_waiting.wait(timeout=30)
    now[0] += 1.0  # a token is available, but the urgent caller still waits in sleep()
    second = threading.Thread(target=later, name="later")
    second.start()
    second.join(timeout=0.5)  # not a timing assertion: it must still be waiting either way
    assert order == []
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert sorted(order) == ["later", "urgent"]  # both served once the urgent one is
