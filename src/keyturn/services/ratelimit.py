"""A thread-safe token bucket: bounds the request rate of many concurrent rotations.

botocore's adaptive retries back off *after* IAM throttles; this keeps a large run from
provoking the throttling in the first place. Clock and sleep are injected for tests.
"""

from __future__ import annotations

import threading
import time
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

    def acquire(self) -> None:
        """Take one token, waiting until one is available."""
        while True:
            with self._lock:
                now = self._monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
                self._last = now
                # The epsilon: refilling by exactly the computed wait can land a hair
                # below 1.0 in floating point, and then wait ever-smaller amounts forever.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self._rate
            self._sleep(wait)


class Unlimited:
    def acquire(self) -> None:
        return None
