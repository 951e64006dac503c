"""Per-caller token buckets for the broker: one client cannot spend IAM's request budget
for everyone. Non-blocking (a request over the limit is answered 429 with Retry-After, never
held in a thread), thread-safe, with an injected monotonic clock.

Scope: one process. `broker serve` is one process, so its limit is exact. On Lambda each
warm instance keeps its own buckets; with reserved concurrency N a caller gets at most N
times the configured rate, which the reserved concurrency bounds (docs/broker.md).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    last: float


class CallerLimits:
    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._monotonic = monotonic
        self._max = max_callers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Take one token for `caller`: 0.0 when allowed, else seconds until one is free."""
        with self._lock:
            now = self._monotonic()
            bucket = self._buckets.pop(caller, None) or _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.last) * self._rate)
            bucket.last = now
            self._buckets[caller] = bucket  # most recently used last
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)  # forget the idlest (its bucket is full)
            if bucket.tokens >= 1 - 1e-9:
                bucket.tokens = max(0.0, bucket.tokens - 1)
                return 0.0
            return (1 - bucket.tokens) / self._rate
