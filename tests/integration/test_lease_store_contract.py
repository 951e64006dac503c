"""One contract, two lease stores: SQLite (embedded) and DynamoDB (moto's server).

Both must give the same answers, and both must let exactly one of several concurrent
compare-and-set writers win, because that is what keeps two revokers from double-acting.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
from keyturn.adapters.lease_sqlite import SqliteLeaseStore, default_path
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.leases import CredentialType, Lease, LeaseState, Role
from keyturn.ports import LeaseStore
from keyturn.sandbox.aws import LocalAws

NOW = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = "arn:aws:iam::123456789012:policy/ro"

StoreFactory = Callable[[], LeaseStore]


@pytest.fixture(params=["sqlite", "dynamodb"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory: each call opens a *separate* connection/client to the same store."""
    if request.param == "sqlite":
        yield lambda: SqliteLeaseStore(tmp_path / "state" / "leases.db")
        return
    aws: LocalAws = request.getfixturevalue("aws")
    DynamoLeaseStore(aws.client("dynamodb"), "keyturn-leases").create_table()
    yield lambda: DynamoLeaseStore(aws.client("dynamodb"), "keyturn-leases")


def lease(suffix: str = "abcdefghijkl", role: str = "dev") -> Lease:
    return Lease(
        lease_id=f"aws/creds/{role}/{suffix}",
        role=role,
        kind=CredentialType.IAM_USER,
        state=LeaseState.PENDING,
        issued=NOW,
        expires=NOW + timedelta(hours=1),
        max_expires=NOW + timedelta(hours=2),
        principal=f"keyturn-{suffix}",
    )


def test_roles_round_trip(new_store: StoreFactory) -> None:
    store = new_store()
    role = Role.build("dev", credential_type="iam_user", policy_arns=[POLICY], max_ttl="2h")
    store.put_role(role)
    store.put_role(Role.build("ops", credential_type="iam_user", policy_arns=[POLICY]))
    assert store.get_role("dev") == role
    assert [r.name for r in store.list_roles()] == ["dev", "ops"]
    assert store.delete_role("dev") is True
    assert store.delete_role("dev") is False
    assert store.get_role("dev") is None


def test_create_get_and_no_duplicate_ids(new_store: StoreFactory) -> None:
    store = new_store()
    created = store.create(lease())
    assert created.version == 1
    assert store.get(created.lease_id) == created
    with pytest.raises(OperationFailedError, match="already exists"):
        store.create(lease())
    assert store.get("aws/creds/dev/nosuchleaseid") is None


def test_list_by_prefix_is_sorted_and_exact(new_store: StoreFactory) -> None:
    store = new_store()
    for suffix, role in [
        ("bbbbbbbbbbbb", "dev"),
        ("aaaaaaaaaaaa", "dev"),
        ("cccccccccccc", "dev2"),
        ("dddddddddddd", "ops"),
    ]:
        store.create(lease(suffix, role))
    assert [x.lease_id for x in store.list_leases("aws/creds/dev/")] == [
        "aws/creds/dev/aaaaaaaaaaaa",
        "aws/creds/dev/bbbbbbbbbbbb",
    ]
    assert len(store.list_leases("aws/creds/dev")) == 3
    assert len(store.list_leases()) == 4
    assert store.list_leases("aws/creds/none/") == []


def test_replace_is_compare_and_set(new_store: StoreFactory) -> None:
    store = new_store()
    first = store.create(lease())
    active = store.replace(first, replace(first, state=LeaseState.ACTIVE, key_id="AKIA1"))
    assert active is not None
    assert active.version == 2
    assert store.replace(first, replace(first, state=LeaseState.REVOKED)) is None  # stale
    stored = store.get(first.lease_id)
    assert stored == active


def test_store_id_is_stable(new_store: StoreFactory) -> None:
    assert new_store().store_id() == new_store().store_id()


def test_exactly_one_of_many_concurrent_claims_wins(new_store: StoreFactory) -> None:
    seed = new_store()
    base = seed.create(lease())
    contenders = [new_store() for _ in range(8)]  # separate connections / clients

    def claim(store: LeaseStore) -> bool:
        seen = store.get(base.lease_id)
        assert seen is not None
        return store.replace(seen, replace(seen, state=LeaseState.REVOKING)) is not None

    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(claim, contenders))
    # Every contender may have read version 1 or a later one; a winner per version at most.
    final = seed.get(base.lease_id)
    assert final is not None
    assert sum(wins) == final.version - 1
    # and with everyone holding the same read, exactly one wins
    again = seed.get(base.lease_id)
    assert again is not None
    results = [s.replace(again, replace(again, attempts=i)) for i, s in enumerate(contenders)]
    assert sum(r is not None for r in results) == 1


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = default_path({"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert path == tmp_path / "xdg" / "keyturn" / "leases.db"
    SqliteLeaseStore(path).store_id()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


OWNER = "arn:aws:iam::123456789012:user/alice"


def test_a_lease_owner_and_a_roles_principals_round_trip(new_store: StoreFactory) -> None:
    """The broker's authorization reads both back from either store."""
    store = new_store()
    role = Role.build(
        "dev",
        credential_type="iam_user",
        policy_arns=[POLICY],
        allowed_principals=["arn:aws:iam::123456789012:role/dev-*"],
        admin_principals=[OWNER],
    )
    store.put_role(role)
    assert new_store().get_role("dev") == role
    created = store.create(replace(lease(), owner=OWNER))
    assert new_store().get(created.lease_id) == created
    assert created.owner == OWNER


def test_an_old_record_without_owner_or_principals_reads_as_none(new_store: StoreFactory) -> None:
    """Records written before the broker have neither field: readable, owned by nobody."""
    store = new_store()
    old = lease().to_dict()
    del old["owner"]
    store.create(Lease.from_dict(old))
    assert new_store().get(old["lease_id"]).owner is None  # type: ignore[union-attr]
    role = Role.build("dev", credential_type="iam_user", policy_arns=[POLICY]).to_dict()
    del role["allowed_principals"], role["admin_principals"]
    assert Role.from_dict(role).allowed_principals == ()
