"""A thread-safe token bucket: bounds the request rate of many concurrent rotations.

botocore's adaptive retries back off *after* IAM throttles; this keeps a large run from
provoking the throttling in the first place. Clock and sleep are injected for tests.

Waiters may carry a priority (0 first): while a more urgent caller waits, a less urgent one
does not take a token. Rotation uses it to spend IAM's budget first on the calls that start
a new key's propagation clock (services/rotate.py says why).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        *,
        burst: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("rate must be positive")
        self._rate = per_second
        self._capacity = float(burst or max(1, int(per_second)))
        self._tokens = self._capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._last = monotonic()
        self._lock = threading.Lock()
        self._waiting: Counter[int] = Counter()  # priority -> callers waiting for a token

    def acquire(self, priority: int = 0) -> None:
        """Take one token, waiting until one is available and no more urgent caller waits.

        `priority`: 0 is the most urgent; callers with a higher number yield to any caller
        with a lower one that is waiting. Starvation is bounded by the urgent callers, who
        are finitely many (bounded workers), each taking one token and leaving.
        """
        with self._lock:
            self._waiting[priority] += 1
        try:
            while True:
                with self._lock:
                    now = self._monotonic()
                    self._tokens = min(
                        self._capacity, self._tokens + (now - self._last) * self._rate
                    )
                    self._last = now
                    ahead = any(n > 0 for p, n in self._waiting.items() if p < priority)
                    # The epsilon: refilling by exactly the computed wait can land a hair
                    # below 1.0 in floating point, and then wait ever-smaller amounts forever.
                    if not ahead and self._tokens >= 1 - 1e-9:
                        self._tokens = max(0.0, self._tokens - 1)
                        return
                    # Behind a more urgent caller: look again after one token's time.
                    wait = 1 / self._rate if ahead else (1 - self._tokens) / self._rate
                self._sleep(wait)
        finally:
            with self._lock:
                self._waiting[priority] -= 1


class Unlimited:
    def acquire(self, priority: int = 0) -> None:
        return None
