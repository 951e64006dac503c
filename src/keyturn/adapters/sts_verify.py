"""Proving a new key works: consecutive successful sts:GetCallerIdentity calls.

IAM is eventually consistent: a new key can work on one endpoint and fail on the next for
5-15 s. One success proves little, a fixed sleep is a guess. Like the Terraform Vault
provider, require N successes in a row within a deadline; a failure resets the streak.
Waits are jittered and bounded; `sleep` and `monotonic` are injected so tests never wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from keyturn.domain.errors import OperationFailedError
from keyturn.domain.model import NewKeySecret


class VerificationFailedError(OperationFailedError):
    """The new key did not authenticate reliably within the deadline."""


class StsVerifier:
    def __init__(
        self,
        sts_for: Callable[[NewKeySecret], Any],
        *,
        successes: int = 5,
        timeout: float = 60.0,
        interval: float = 1.0,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._sts_for = sts_for
        self._successes = successes
        self._timeout = timeout
        self._interval = interval
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto

    def verify(self, user: str, secret: NewKeySecret) -> None:
        """Raise VerificationFailedError unless `successes` calls in a row succeed as `user`."""
        client = self._sts_for(secret)
        deadline = self._monotonic() + self._timeout
        streak = 0
        failures = 0
        last_error = "no attempt"
        while True:
            try:
                arn = str(client.get_caller_identity()["Arn"])
            except (ClientError, BotoCoreError) as exc:
                streak = 0
                failures += 1
                last_error = _describe(exc)
            else:
                if not arn.endswith(f":user/{user}") and f"/{user}" not in arn.split(":")[-1]:
                    raise VerificationFailedError(
                        f"new key {secret.access_key_id} authenticates as {arn}, not {user}"
                    )
                streak += 1
                if streak >= self._successes:
                    return
            wait = self._wait(streak, failures)
            if self._monotonic() + wait > deadline:
                raise VerificationFailedError(
                    f"new key {secret.access_key_id} of {user} did not authenticate "
                    f"{self._successes} times in a row within {self._timeout:.0f}s "
                    f"(last error: {last_error})"
                )
            self._sleep(wait)

    def _wait(self, streak: int, failures: int) -> float:
        if streak:
            return self._interval * self._rng.uniform(0.5, 1.0)
        # Full jitter on failures, so many workers don't retry in lockstep; capped low
        # (default 2 s) because the failures being waited out are propagation, which ends at
        # a moment we cannot know: each wait past it is pure delay for this user. At 8 s the
        # cap overshot a 10 s propagation by ~4 s on average; at 2 s, by well under 1 s, for
        # a few more GetCallerIdentity calls (STS, not the IAM rate). Never below `interval`.
        cap = min(self._max_backoff, self._interval * (2 ** min(failures, 6)))
        return self._rng.uniform(self._interval * 0.5, max(cap, self._interval))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__
