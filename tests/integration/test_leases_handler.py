"""The scheduled Lambda: tidy through the DynamoDB store, against moto's server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.leases import TAG_LEASE, TAG_STORE, LeaseState, Role
from keyturn.handlers.leases import handler
from keyturn.sandbox.aws import LocalAws
from keyturn.services.leases import LeaseEngineSettings, LeaseService

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


class PastClock:
    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=2)


def test_scheduled_tidy_revokes_expired_leases_and_orphans(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_LEASES_STORE", "dynamodb")
    monkeypatch.setenv("KEYTURN_LEASES_DYNAMODB_TABLE", "leases")
    monkeypatch.setenv("KEYTURN_LEASES_TIDY_MARGIN", "0s")
    store = DynamoLeaseStore(aws.client("dynamodb"), "leases")
    store.create_table()
    iam = aws.client("iam")
    arn = iam.create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"]["Arn"]
    store.put_role(Role.build("dev", credential_type="iam_user", policy_arns=[arn]))
    issued_in_the_past = LeaseService(
        store,
        IamLeaseAdmin(iam),
        StsLeaseIssuer(aws.client("sts")),
        PastClock(),
        LeaseEngineSettings(),
    )
    orphan = _orphan_by_race(aws, store)
    expired = issued_in_the_past.issue("dev", timedelta(hours=1)).lease
    # tagged as this store's, but no record of the store names it: left alone, reported
    iam.create_user(
        UserName="keyturn-orphan",
        Tags=[
            {"Key": TAG_LEASE, "Value": "aws/creds/dev/lostlostlost"},
            {"Key": TAG_STORE, "Value": store.store_id()},
        ],
    )

    result = handler({}, None)

    assert result["revoked"] == [expired.lease_id]
    assert result["orphans_removed"] == [orphan]
    [line] = result["not_ours"]
    assert "keyturn-orphan" in line
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["keyturn-orphan"]
    stored = store.get(expired.lease_id)
    assert stored is not None
    assert stored.state is LeaseState.REVOKED


class _Crash(BaseException):
    pass


def _orphan_by_race(aws: LocalAws, store: DynamoLeaseStore) -> str:
    """An issue slower than the tidy margin: tidy revokes its intent before CreateUser, then
    the issuer creates the user and dies. The REVOKED record names the user that exists."""

    def engine(checkpoint: object = None) -> LeaseService:
        return LeaseService(
            store,
            IamLeaseAdmin(aws.client("iam")),
            StsLeaseIssuer(aws.client("sts")),
            SystemClock(),
            LeaseEngineSettings(tidy_margin=timedelta(0)),
            checkpoint=checkpoint or (lambda step: None),  # type: ignore[arg-type]
        )

    def checkpoint(step: str) -> None:
        if step == "intent":
            engine().tidy()
        if step == "create_user":
            raise _Crash

    with pytest.raises(_Crash):
        engine(checkpoint).issue("dev")
    names = {u["UserName"] for u in aws.client("iam").list_users()["Users"]}
    [lease] = [x for x in store.list_leases() if x.principal in names]
    assert lease.state is LeaseState.REVOKED
    return lease.principal


def test_tidy_that_leaves_work_undone_fails_the_invocation(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_LEASES_STORE", "dynamodb")
    store = DynamoLeaseStore(aws.client("dynamodb"), "keyturn-leases")
    store.create_table()
    iam = aws.client("iam")
    arn = iam.create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"]["Arn"]
    store.put_role(Role.build("dev", credential_type="iam_user", policy_arns=[arn]))
    service = LeaseService(
        store,
        IamLeaseAdmin(iam),
        StsLeaseIssuer(aws.client("sts")),
        PastClock(),
        LeaseEngineSettings(max_revoke_attempts=1),
    )

    class Broken(IamLeaseAdmin):
        def delete_user_everything(self, user: str) -> bool:
            raise OperationFailedError("iam:DeleteUser failed: AccessDenied-like")

    lease = service.issue("dev", timedelta(hours=1)).lease
    LeaseService(
        store,
        Broken(iam),
        StsLeaseIssuer(aws.client("sts")),
        PastClock(),
        LeaseEngineSettings(max_revoke_attempts=1),
        sleep=lambda _: None,
    ).revoke(lease.lease_id)
    with pytest.raises(OperationFailedError, match="1 irrevocable"):
        handler({}, None)
