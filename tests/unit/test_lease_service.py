"""LeaseService against fakes: retry, give-up, rollback, validation before writes.

The store is the real SQLite adapter in a temp dir (no server needed); IAM and STS are
fakes so failures can be injected exactly where the test wants them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.domain.leases import LeaseState, ManagedUser, Role, StsCredentials
from keyturn.domain.model import NewKeySecret
from keyturn.services.leases import LeaseEngineSettings, LeaseService, RevokeResult

POLICY = "arn:aws:iam::123456789012:policy/ro"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


class FakeClock:
    def __init__(self) -> None:
        self.value = datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.value


@dataclass
class FakeIam:
    users: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail_attach: bool = False
    delete_failures: int = 0  # how many delete attempts fail before one succeeds

    def create_user(self, name: str, path: str, boundary: str | None, tags: dict[str, str]) -> None:
        self.calls.append("create_user")
        self.users.add(name)

    def attach_user_policy(self, user: str, policy_arn: str) -> None:
        self.calls.append("attach")
        if self.fail_attach:
            raise OperationFailedError("iam:AttachUserPolicy failed: LimitExceeded")

    def put_user_policy(self, user: str, policy_name: str, document: str) -> None:
        self.calls.append("put")

    def add_user_to_group(self, user: str, group: str) -> None:
        self.calls.append("group")

    def create_access_key(self, user: str) -> NewKeySecret:
        self.calls.append("create_key")
        return NewKeySecret("AKIAFAKE0000000001", SECRET)

    def delete_user_everything(self, user: str) -> bool:
        self.calls.append("delete")
        if self.delete_failures:
            self.delete_failures -= 1
            raise OperationFailedError("iam:DeleteUser failed: Throttling")
        if user not in self.users:
            return False
        self.users.discard(user)
        return True

    def managed_users(self, path_prefixes: list[str], name_prefix: str) -> Iterator[ManagedUser]:
        return iter(())


class NoSts:
    def assume_role(self, *args: object) -> StsCredentials:
        raise AssertionError("not used")

    def federation_token(self, *args: object) -> StsCredentials:
        raise AssertionError("not used")


@pytest.fixture
def parts(tmp_path: Path) -> tuple[LeaseService, FakeIam, SqliteLeaseStore, FakeClock, list[float]]:
    store = SqliteLeaseStore(tmp_path / "leases.db")
    iam = FakeIam()
    clock = FakeClock()
    sleeps: list[float] = []
    service = LeaseService(
        store,
        iam,
        NoSts(),
        clock,
        LeaseEngineSettings(max_revoke_attempts=3, retries_per_attempt=2),
        sleep=sleeps.append,
    )
    service.write_role(
        Role.build("dev", credential_type="iam_user", policy_arns=[POLICY], max_ttl="2h")
    )
    return service, iam, store, clock, sleeps


def test_issued_secret_never_in_repr_or_record(parts) -> None:  # type: ignore[no-untyped-def]
    service, _, store, _, _ = parts
    issued = service.issue("dev")
    assert SECRET not in repr(issued)
    stored = store.get(issued.lease.lease_id)
    assert stored is not None
    assert stored.state is LeaseState.ACTIVE
    assert SECRET not in str(stored.to_dict())
    assert SECRET not in (store.path.read_bytes() + Path(f"{store.path}-wal").read_bytes()).decode(
        "latin-1"
    )


def test_bad_input_creates_nothing(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, store, _, _ = parts
    with pytest.raises(BadInputError, match="unknown role"):
        service.issue("nope")
    with pytest.raises(BadInputError, match="max_ttl"):
        service.issue("dev", timedelta(hours=3))
    assert iam.calls == []
    assert store.list_leases() == []


def test_failed_issue_rolls_back_at_once(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, store, _, _ = parts
    iam.fail_attach = True
    with pytest.raises(OperationFailedError, match="LimitExceeded"):
        service.issue("dev")
    assert iam.users == set()
    [lease] = store.list_leases()
    assert lease.state is LeaseState.REVOKED


def test_transient_failures_are_retried_within_an_attempt(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, _, _, sleeps = parts
    issued = service.issue("dev")
    iam.delete_failures = 1
    outcome = service.revoke(issued.lease.lease_id)
    assert outcome.result is RevokeResult.REVOKED
    assert len(sleeps) == 1  # one jittered backoff, no fixed sleep


def test_revoke_gives_up_after_max_attempts_and_tidy_stops_retrying(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, store, clock, _ = parts
    issued = service.issue("dev", timedelta(hours=1))
    lease_id = issued.lease.lease_id
    iam.delete_failures = 10**6
    first = service.revoke(lease_id)
    assert first.result is RevokeResult.FAILED
    assert "attempt 1 of 3" in first.detail
    clock.value += timedelta(hours=2)  # expired: tidy picks it up
    assert service.tidy().revoked[0].result is RevokeResult.FAILED
    report = service.tidy()
    assert [o.result for o in report.revoked] == [RevokeResult.IRREVOCABLE]
    assert report.irrevocable == [lease_id]
    assert not report.ok
    stored = store.get(lease_id)
    assert stored is not None
    assert stored.state is LeaseState.IRREVOCABLE
    assert stored.attempts == 3
    calls = len(iam.calls)
    again = service.tidy()  # reported, not retried forever
    assert again.irrevocable == [lease_id]
    assert len(iam.calls) == calls
    iam.delete_failures = 0  # a human fixed it: an explicit revoke still works
    assert service.revoke(lease_id).result is RevokeResult.REVOKED


def test_user_already_gone_counts_as_revoked(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, _, _, _ = parts
    issued = service.issue("dev")
    iam.users.clear()
    outcome = service.revoke(issued.lease.lease_id)
    assert outcome.result is RevokeResult.REVOKED
    assert "already gone" in outcome.detail
    assert service.revoke(issued.lease.lease_id).result is RevokeResult.ALREADY_REVOKED


def test_a_live_claim_is_respected_and_a_stale_one_taken_over(parts) -> None:  # type: ignore[no-untyped-def]
    service, iam, store, clock, _ = parts
    issued = service.issue("dev")
    lease = store.get(issued.lease.lease_id)
    assert lease is not None
    from dataclasses import replace

    claimed = store.replace(
        lease,
        replace(lease, state=LeaseState.REVOKING, claimed_until=clock.value + timedelta(minutes=5)),
    )
    assert claimed is not None
    assert service.revoke(lease.lease_id).result is RevokeResult.IN_PROGRESS
    assert "delete" not in iam.calls
    clock.value += timedelta(minutes=6)  # that revoker died
    assert service.revoke(lease.lease_id).result is RevokeResult.REVOKED


def test_a_revoke_that_only_saw_another_revoker_is_not_ok(parts) -> None:  # type: ignore[no-untyped-def]
    """`lease revoke` exits 0 only for a lease seen REVOKED (issue 12, item 9)."""
    service, _iam, store, clock, sleeps = parts
    issued = service.issue("dev")
    lease = store.get(issued.lease.lease_id)
    from dataclasses import replace

    store.replace(
        lease,
        replace(lease, state=LeaseState.REVOKING, claimed_until=clock.value + timedelta(minutes=5)),
    )
    outcome = service.revoke(lease.lease_id)
    assert outcome.result is RevokeResult.IN_PROGRESS
    assert not outcome.ok
    assert issued.lease.principal in outcome.detail
    assert sleeps  # it waited (bounded) for the other revoker before saying so


def test_a_revoke_waits_for_the_other_revoker_to_finish(tmp_path: Path) -> None:
    store = SqliteLeaseStore(tmp_path / "leases.db")
    iam = FakeIam()
    clock = FakeClock()
    from dataclasses import replace

    def other_revoker_finishes(seconds: float) -> None:
        current = store.get(lease_id)
        assert current is not None
        if current.state is LeaseState.REVOKING:
            iam.users.discard(current.principal)
            store.replace(current, replace(current, state=LeaseState.REVOKED))

    service = LeaseService(
        store, iam, NoSts(), clock, LeaseEngineSettings(), sleep=other_revoker_finishes
    )
    service.write_role(Role.build("dev", credential_type="iam_user", policy_arns=[POLICY]))
    lease = store.get(service.issue("dev").lease.lease_id)
    assert lease is not None
    lease_id = lease.lease_id
    store.replace(
        lease,
        replace(lease, state=LeaseState.REVOKING, claimed_until=clock.value + timedelta(minutes=5)),
    )
    outcome = service.revoke(lease_id)
    assert outcome.result is RevokeResult.ALREADY_REVOKED
    assert outcome.ok
    assert "delete" not in iam.calls  # the other revoker did it; this one never double-acts


def test_renew_without_increment_never_moves_the_expiry_earlier(parts) -> None:  # type: ignore[no-untyped-def]
    """Issued for 2h under a role whose default is 1h: a plain renew keeps the 2h expiry."""
    service, _, _, clock, _ = parts
    service.write_role(
        Role.build("short", credential_type="iam_user", policy_arns=[POLICY], default_ttl="1h")
    )
    issued = service.issue("short", timedelta(hours=2)).lease
    clock.value += timedelta(minutes=5)
    renewed_lease, warning = service.renew(issued.lease_id)
    assert renewed_lease.expires == issued.expires
    assert warning is not None
    assert "never shortens" in warning
