"""An iam_user lease is handed out only once its key works (issue 14, item 3).

The rotation verifier (N successful sts:GetCallerIdentity calls in a row, bounded) runs in
LeaseService's issue path, so every caller (CLI, Lambda, broker) gets it. The STS client
is a fake that fails while the key "propagates"; clock and sleep are injected, nothing waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.sts_verify import StsVerifier
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.leases import LeaseState, Role
from keyturn.domain.model import NewKeySecret
from keyturn.services.leases import LeaseEngineSettings, LeaseService
from tests.unit.test_lease_service import POLICY, SECRET, FakeClock, FakeIam, NoSts


class PropagatingSts:
    """Refuses the key `failures` times, then answers as the leased user."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.user = ""

    def get_caller_identity(self) -> dict[str, str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError(
                {"Error": {"Code": "InvalidClientTokenId", "Message": "no"}}, "GetCallerIdentity"
            )
        return {"Arn": f"arn:aws:iam::123456789012:user/{self.user}"}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def build(tmp_path: Path, failures: int, timeout: float = 60.0) -> tuple[Any, ...]:
    sts = PropagatingSts(failures)
    seen: list[NewKeySecret] = []
    clock = FakeTime()

    def sts_for(secret: NewKeySecret) -> PropagatingSts:
        seen.append(secret)
        return sts

    verifier = StsVerifier(
        sts_for, successes=5, timeout=timeout, sleep=clock.sleep, monotonic=clock.monotonic
    )
    iam = FakeIam()
    store = SqliteLeaseStore(tmp_path / "leases.db")
    service = LeaseService(
        store,
        iam,
        NoSts(),
        FakeClock(),
        LeaseEngineSettings(),
        sleep=lambda _: None,
        ready=verifier,
    )
    service.write_role(Role.build("dev", credential_type="iam_user", policy_arns=[POLICY]))
    return service, iam, store, sts, seen


def test_key_is_handed_out_after_five_successes_in_a_row(tmp_path: Path) -> None:
    service, iam, store, sts, seen = build(tmp_path, failures=3)
    sts.user = "unknown"

    def issue_as_user() -> Any:
        # the user name is chosen at issue; answer as whatever user the key belongs to
        original = iam.create_access_key

        def create(user: str) -> NewKeySecret:
            sts.user = user
            return original(user)

        iam.create_access_key = create
        return service.issue("dev")

    issued = issue_as_user()
    assert sts.calls == 3 + 5
    assert [s.access_key_id for s in seen] == [issued.access_key_id]
    assert store.get(issued.lease.lease_id).state is LeaseState.ACTIVE


def test_a_key_that_never_works_is_revoked_and_not_handed_out(tmp_path: Path) -> None:
    service, iam, store, _, _ = build(tmp_path, failures=10**6, timeout=20)
    with pytest.raises(OperationFailedError) as caught:
        service.issue("dev")
    message = str(caught.value)
    assert "did not authenticate 5 times in a row within 20s" in message
    assert "InvalidClientTokenId" in message
    assert "--no-wait" in message
    assert SECRET not in message
    assert iam.users == set()
    [lease] = store.list_leases()
    assert lease.state is LeaseState.REVOKED


def test_no_wait_hands_the_key_out_at_once(tmp_path: Path) -> None:
    service, _, store, sts, _ = build(tmp_path, failures=10**6)
    issued = service.issue("dev", wait=False)
    assert sts.calls == 0
    assert store.get(issued.lease.lease_id).state is LeaseState.ACTIVE
