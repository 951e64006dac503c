"""Leases against an attacker inside the account (moto's server, the real adapters).

Tags and user names are writable by anyone with `iam:CreateUser` / `iam:TagUser`: `tidy`
must remove only users its own lease store names, and a revoke must never report success
for a lease that is still live. Races are made deterministic by a store wrapper that runs
the competing operation exactly before the compare-and-set it races.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.leases import Lease, LeaseState, Role
from keyturn.sandbox.aws import LocalAws
from keyturn.services.leases import LeaseEngineSettings, LeaseService, RevokeResult

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


class Crash(BaseException):
    """A `kill -9` at a step boundary: nothing after it runs, no rollback."""


class RacingStore(SqliteLeaseStore):
    """The real SQLite store; `before_replace(current, new)` runs once, just before the
    first compare-and-set it matches, so a competitor's write lands in exactly that gap."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.before_replace: Callable[[Lease, Lease], bool] | None = None
        self.competitor: Callable[[], None] = lambda: None

    def replace(self, current: Lease, new: Lease) -> Lease | None:
        hook = self.before_replace
        if hook is not None and hook(current, new):
            self.before_replace = None
            self.competitor()
        return super().replace(current, new)


def service(
    aws: LocalAws, store: SqliteLeaseStore, checkpoint: Any = None, **engine: Any
) -> LeaseService:
    engine.setdefault("tidy_margin", timedelta(0))
    return LeaseService(
        store,
        IamLeaseAdmin(aws.client("iam")),
        StsLeaseIssuer(aws.client("sts")),
        SystemClock(),
        LeaseEngineSettings(**engine),
        checkpoint=checkpoint or (lambda step: None),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "leases.db"


@pytest.fixture
def svc(aws: LocalAws, db: Path) -> LeaseService:
    iam = aws.client("iam")
    arn = iam.create_policy(PolicyName="s3-list", PolicyDocument=POLICY)["Policy"]["Arn"]
    built = service(aws, SqliteLeaseStore(db))
    for name in ("dev", "dev-admin", "developers"):
        built.write_role(
            Role.build(name, credential_type="iam_user", policy_arns=[arn], max_ttl="2h")
        )
    return built


def users(aws: LocalAws) -> set[str]:
    return {u["UserName"] for u in aws.client("iam").list_users()["Users"]}


def copy_tags(aws: LocalAws, source: str, target: str) -> None:
    """The attacker: a user of their own, carrying every tag of a real lease user."""
    iam = aws.client("iam")
    tags = iam.list_user_tags(UserName=source)["Tags"]
    iam.create_user(UserName=target, Tags=tags)
    iam.create_access_key(UserName=target)
    iam.put_user_policy(UserName=target, PolicyName="deploy", PolicyDocument=POLICY)


def keys_of(aws: LocalAws, user: str) -> list[str]:
    found = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return [k["AccessKeyId"] for k in found]


def orphan_by_race(aws: LocalAws, db: Path) -> str:
    """The one real orphan keyturn can leave: tidy revoked an issue's PENDING intent before
    CreateUser ran (the issuer was slower than the margin), then the issuer created the
    user and died. The store's record is REVOKED and names the user, which exists."""
    store = SqliteLeaseStore(db)
    tidier = service(aws, store)

    def checkpoint(step: str) -> None:
        if step == "intent":
            report = tidier.tidy()
            assert [o.result for o in report.revoked] == [RevokeResult.REVOKED]
        if step == "create_user":
            raise Crash

    with pytest.raises(Crash):
        service(aws, store, checkpoint).issue("dev")
    revoked = [x for x in store.list_leases() if x.state is LeaseState.REVOKED]
    [lease] = [x for x in revoked if x.principal in users(aws)]
    return lease.principal


def test_tidy_spares_a_look_alike_with_copied_tags_and_removes_a_proven_orphan(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    live = svc.issue("dev", timedelta(hours=1)).lease
    gone = svc.issue("dev", timedelta(hours=1)).lease
    copy_tags(aws, live.principal, "keyturn-deployer")  # tags of a live lease's user
    copy_tags(aws, gone.principal, "keyturn-builder")  # tags of a lease revoked below
    svc.revoke(gone.lease_id)
    real_orphan = orphan_by_race(aws, db)
    deployer_keys = keys_of(aws, "keyturn-deployer")

    report = svc.tidy()

    assert report.orphans_removed == [real_orphan]
    assert {"keyturn-deployer", "keyturn-builder", live.principal} <= users(aws)
    assert real_orphan not in users(aws)
    assert keys_of(aws, "keyturn-deployer") == deployer_keys  # untouched, key and all
    policies = aws.client("iam").list_user_policies(UserName="keyturn-deployer")["PolicyNames"]
    assert policies == ["deploy"]
    assert len(report.not_ours) == 2
    [line] = [x for x in report.not_ours if "keyturn-deployer" in x]
    assert f"whose user is {live.principal}" in line
    assert "\n" not in line
    assert report.ok  # a look-alike is reported, not a failure of tidy


def test_crash_after_create_user_is_cleaned_by_its_intent_not_by_tags(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    store = SqliteLeaseStore(db)

    def crash_after_create(step: str) -> None:
        if step == "create_user":
            raise Crash

    with pytest.raises(Crash):
        service(aws, store, crash_after_create).issue("dev")
    [pending] = store.list_leases()
    assert pending.state is LeaseState.PENDING  # the intent, written before CreateUser
    assert pending.principal in users(aws)
    copy_tags(aws, pending.principal, "keyturn-deployer")

    report = svc.tidy()

    assert [(o.lease_id, o.result) for o in report.revoked] == [
        (pending.lease_id, RevokeResult.REVOKED)
    ]
    assert pending.principal not in users(aws)
    assert "keyturn-deployer" in users(aws)
    assert keys_of(aws, "keyturn-deployer")
    assert any("keyturn-deployer" in line for line in report.not_ours)


def test_a_tagged_user_without_a_store_record_or_with_a_foreign_name_is_kept(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    lease = svc.issue("dev").lease
    tags = aws.client("iam").list_user_tags(UserName=lease.principal)["Tags"]
    forged = [
        {**t, "Value": "aws/creds/dev/neverissuedbyus"} if t["Key"] == "keyturn:lease-id" else t
        for t in tags
    ]
    aws.client("iam").create_user(UserName="keyturn-ci", Tags=forged)
    svc.revoke(lease.lease_id)
    report = svc.tidy()
    assert report.orphans_removed == []
    assert "keyturn-ci" in users(aws)
    [line] = report.not_ours
    assert "no record of" in line


def test_tidy_names_the_lease_it_holds_back_for_its_margin(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    store = SqliteLeaseStore(db)

    def crash_after_create(step: str) -> None:
        if step == "create_user":
            raise Crash

    with pytest.raises(Crash):
        service(aws, store, crash_after_create).issue("dev")
    [pending] = store.list_leases()
    careful = service(aws, store, tidy_margin=timedelta(minutes=15))
    report = careful.tidy()
    assert report.revoked == []
    [line] = report.held_back
    assert pending.lease_id in line
    assert "15m tidy margin" in line
    assert pending.principal in users(aws)


def test_young_proven_orphan_waits_for_the_margin(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    orphan = orphan_by_race(aws, db)
    report = service(aws, SqliteLeaseStore(db), tidy_margin=timedelta(hours=1)).tidy()
    assert report.orphans_waiting == [orphan]
    assert orphan in users(aws)


def test_revoke_prefix_matches_whole_path_segments(aws: LocalAws, svc: LeaseService) -> None:
    dev = [svc.issue("dev").lease for _ in range(2)]
    others = [svc.issue("dev-admin").lease, svc.issue("developers").lease]
    outcomes = svc.revoke_prefix("aws/creds/dev")
    assert sorted(o.lease_id for o in outcomes) == sorted(x.lease_id for x in dev)
    assert {x.principal for x in others} <= users(aws)
    assert not {x.principal for x in dev} & users(aws)
    assert [x.lease_id for x in svc.list_leases("aws/creds/dev")] == sorted(x.lease_id for x in dev)


def test_revoke_that_loses_its_claim_to_a_renew_still_revokes(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    store = RacingStore(db)
    racer = service(aws, store)
    lease = racer.issue("dev", timedelta(minutes=30)).lease
    renewer = service(aws, SqliteLeaseStore(db))
    # The renew commits between the revoke's read and its claim.
    store.before_replace = lambda current, new: new.state is LeaseState.REVOKING
    store.competitor = lambda: renewer.renew(lease.lease_id, timedelta(hours=1)) and None

    outcome = racer.revoke(lease.lease_id)

    assert outcome.result is RevokeResult.REVOKED, outcome
    assert outcome.ok
    final = store.get(lease.lease_id)
    assert final is not None
    assert final.state is LeaseState.REVOKED
    assert lease.principal not in users(aws)


def test_revoke_that_keeps_losing_to_renews_says_it_did_not_revoke(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    store = RacingStore(db)
    racer = service(aws, store, claim_attempts=3)
    lease = racer.issue("dev", timedelta(minutes=30)).lease
    renewer = service(aws, SqliteLeaseStore(db))

    def renew_every_time(current: Lease, new: Lease) -> bool:
        if new.state is LeaseState.REVOKING:
            renewer.renew(lease.lease_id, timedelta(hours=1))
        return False

    store.before_replace = renew_every_time
    outcome = racer.revoke(lease.lease_id)
    assert outcome.result is RevokeResult.CONTENDED
    assert not outcome.ok
    assert "still ACTIVE" in outcome.detail
    assert lease.principal in users(aws)


def test_renew_that_loses_to_a_revoke_fails_clearly(
    aws: LocalAws, db: Path, svc: LeaseService
) -> None:
    store = RacingStore(db)
    renewer = service(aws, store)
    lease = renewer.issue("dev", timedelta(minutes=30)).lease
    revoker = service(aws, SqliteLeaseStore(db))
    results: list[RevokeResult] = []
    store.before_replace = lambda current, new: new.state is LeaseState.ACTIVE
    store.competitor = lambda: results.append(revoker.revoke(lease.lease_id).result)

    with pytest.raises(OperationFailedError, match="being revoked"):
        renewer.renew(lease.lease_id, timedelta(hours=1))
    assert results == [RevokeResult.REVOKED]
    assert lease.principal not in users(aws)
