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
    assert max(clock.slept) <= 2.0  # the default cap
    assert len(set(clock.slept)) > 1
    capped = Clock()
    verifier(FakeSts("x" * 20), capped, successes=2, timeout=600, interval=1, max_backoff=5).verify(
        "alice", SECRET
    )
    assert max(capped.slept) <= 5.0


class PropagatingSts(FakeSts):
    """Refuses the key until the clock reaches `ready_at`, as IAM does while it propagates."""

    def __init__(self, clock: Clock, ready_at: float) -> None:
        super().__init__("")
        self.clock = clock
        self.ready_at = ready_at
        self.first_success: float | None = None

    def get_caller_identity(self) -> dict[str, Any]:
        self.calls += 1
        if self.clock.now < self.ready_at:
            raise ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "GetCallerIdentity")
        if self.first_success is None:
            self.first_success = self.clock.now
        return {"Arn": ARN}


@pytest.mark.parametrize("seed", range(20))
def test_a_propagated_key_is_noticed_within_one_capped_wait(seed: int) -> None:
    clock = Clock()
    sts = PropagatingSts(clock, ready_at=10.0)
    StsVerifier(
        lambda secret: sts,
        successes=5,
        timeout=60,
        interval=1,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=random.Random(seed),
    ).verify("alice", SECRET)
    assert sts.first_success is not None
    assert 10.0 <= sts.first_success <= 10.0 + 2.0


def test_a_key_of_another_user_fails() -> None:
    class Other(FakeSts):
        def get_caller_identity(self) -> dict[str, Any]:
            return {"Arn": "arn:aws:iam::123456789012:user/mallory"}

    with pytest.raises(VerificationFailedError, match="not alice"):
        verifier(Other(""), Clock()).verify("alice", SECRET)
