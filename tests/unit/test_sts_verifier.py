"""The verifier's streak logic with a fake STS and a fake clock: no real waiting."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keyturn.adapters.sts_verify import StsVerifier, VerificationFailedError
from keyturn.domain.model import NewKeySecret

SECRET = NewKeySecret("AKIANEW0000000000000", "s3cr3t-value-never-shown")
ARN = "arn:aws:iam::123456789012:user/alice"


class FakeSts:
    def __init__(self, script: str) -> None:
        self.script = list(script)  # "o" ok, "x" InvalidClientTokenId
        self.calls = 0

    def get_caller_identity(self) -> dict[str, Any]:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else "o"
        if outcome == "x":
            raise ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "GetCallerIdentity")
        return {"Arn": ARN}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def verifier(sts: FakeSts, clock: Clock, **kwargs: Any) -> StsVerifier:
    return StsVerifier(
        lambda secret: sts,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=random.Random(7),
        **kwargs,
    )


def test_needs_n_successes_in_a_row() -> None:
    sts, clock = FakeSts("ooxoooxo"), Clock()
    verifier(sts, clock, successes=5, timeout=60, interval=1).verify("alice", SECRET)
    # o o x (reset) o o o x (reset) o, then 4 more successes: 7 + 5 calls
    assert sts.calls == 12


def test_gives_up_at_the_deadline_without_the_secret_in_the_message() -> None:
    sts, clock = FakeSts("x" * 1000), Clock()
    with pytest.raises(VerificationFailedError) as caught:
        verifier(sts, clock, successes=5, timeout=60, interval=1).verify("alice", SECRET)
    assert clock.now <= 60
    assert "InvalidClientTokenId" in str(caught.value)
    assert SECRET.secret_access_key not in str(caught.value)


def test_waits_are_bounded_and_jittered() -> None:
    sts, clock = FakeSts("x" * 20), Clock()
    verifier(sts, clock, successes=2, timeout=600, interval=1).verify("alice", SECRET)
    assert max(clock.slept) <= 8.0
    assert len(set(clock.slept)) > 1


def test_a_key_of_another_user_fails() -> None:
    class Other(FakeSts):
        def get_caller_identity(self) -> dict[str, Any]:
            return {"Arn": "arn:aws:iam::123456789012:user/mallory"}

    with pytest.raises(VerificationFailedError, match="not alice"):
        verifier(Other(""), Clock()).verify("alice", SECRET)
