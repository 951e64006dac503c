"""Leases against moto's server: what a user of `keyturn creds` relies on, end to end.

Every test builds the real adapters (IAM, STS, SQLite store) pointed at the emulator.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.leases import TAG_LEASE, TAG_STORE, LeaseState, Role
from keyturn.sandbox.aws import ACCOUNT, LocalAws
from keyturn.services.leases import LeaseEngineSettings, LeaseService, RevokeResult

READ_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}],
    }
)


class Clock:
    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


def make_service(aws: LocalAws, db: Path, clock: Any = None, **engine: Any) -> LeaseService:
    engine.setdefault("tidy_margin", timedelta(0))
    return LeaseService(
        SqliteLeaseStore(db),
        IamLeaseAdmin(aws.client("iam")),
        StsLeaseIssuer(aws.client("sts")),
        clock or SystemClock(),
        LeaseEngineSettings(**engine),
    )


@pytest.fixture
def policy_arn(aws: LocalAws) -> str:
    arn: str = aws.client("iam").create_policy(PolicyName="ro", PolicyDocument=READ_ONLY)["Policy"][
        "Arn"
    ]
    return arn


@pytest.fixture
def service(aws: LocalAws, tmp_path: Path, policy_arn: str) -> LeaseService:
    iam = aws.client("iam")
    iam.create_group(GroupName="devs")
    svc = make_service(aws, tmp_path / "leases.db")
    svc.write_role(
        Role.build(
            "dev",
            credential_type="iam_user",
            policy_arns=[policy_arn],
            policy_document=READ_ONLY,
            iam_groups=["devs"],
            iam_tags={"team": "platform"},
            permissions_boundary_arn=policy_arn,
            user_path="/keyturn/",
            max_ttl="2h",
        )
    )
    return svc


def users(aws: LocalAws) -> list[str]:
    return [u["UserName"] for u in aws.client("iam").list_users()["Users"]]


def test_iam_user_lifecycle_even_with_login_profile_and_mfa(
    aws: LocalAws, service: LeaseService, policy_arn: str
) -> None:
    issued = service.issue("dev", timedelta(hours=1), display_name="alice")
    lease = issued.lease
    iam = aws.client("iam")
    user = iam.get_user(UserName=lease.principal)["User"]
    assert user["Path"] == "/keyturn/"
    # moto drops CreateUser's PermissionsBoundary; the Stubber test proves it is sent.
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=lease.principal)["Tags"]}
    assert tags[TAG_LEASE] == lease.lease_id
    assert tags["team"] == "platform"
    assert tags[TAG_STORE] == service.store_id()
    assert [
        p["PolicyArn"]
        for p in iam.list_attached_user_policies(UserName=lease.principal)["AttachedPolicies"]
    ] == [policy_arn]
    assert iam.list_user_policies(UserName=lease.principal)["PolicyNames"] == ["keyturn-lease"]
    assert [
        g["GroupName"] for g in iam.list_groups_for_user(UserName=lease.principal)["Groups"]
    ] == ["devs"]

    # the issued credential authenticates as that user
    who = aws.client("sts", key_id=issued.access_key_id, secret=issued.secret_access_key)
    assert who.get_caller_identity()["Arn"].endswith(f"user/keyturn/{lease.principal}")

    renewed, warning = service.renew(lease.lease_id, timedelta(hours=5))
    assert warning is not None
    assert renewed.expires == lease.max_expires

    # Someone gives the user a console password and an MFA device, which Vault's engine
    # cannot get past (DeleteUser fails with DeleteConflict and the lease leaks).
    iam.create_login_profile(UserName=lease.principal, Password="Sup3r-secret-pw!")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=lease.principal)[
        "VirtualMFADevice"
    ]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=lease.principal,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    iam.upload_ssh_public_key(UserName=lease.principal, SSHPublicKeyBody=SSH_KEY)

    outcome = service.revoke(lease.lease_id)
    assert outcome.result is RevokeResult.REVOKED
    assert lease.principal not in users(aws)
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []
    stored = service.get(lease.lease_id)
    assert stored.state is LeaseState.REVOKED
    assert service.revoke(lease.lease_id).result is RevokeResult.ALREADY_REVOKED


def test_user_deleted_out_of_band_is_revoked_not_retried(
    aws: LocalAws, service: LeaseService
) -> None:
    lease = service.issue("dev").lease
    IamLeaseAdmin(aws.client("iam")).delete_user_everything(lease.principal)
    outcome = service.revoke(lease.lease_id)
    assert outcome.result is RevokeResult.REVOKED
    assert "already gone" in outcome.detail


def test_assumed_role_and_federation_token(
    aws: LocalAws, service: LeaseService, policy_arn: str
) -> None:
    iam = aws.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role_arn = iam.create_role(RoleName="app", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    service.write_role(
        Role.build(
            "app",
            credential_type="assumed_role",
            role_arns=[role_arn],
            policy_arns=[policy_arn],
            max_ttl="2h",
        )
    )
    service.write_role(
        Role.build("fed", credential_type="federation_token", policy_document=READ_ONLY)
    )
    before = users(aws)

    assumed = service.issue("app", timedelta(minutes=30))
    assert assumed.session_token
    assert not assumed.lease.renewable
    assert 29 * 60 <= (assumed.lease.expires - assumed.lease.issued).total_seconds() <= 31 * 60
    who = aws.client("sts", key_id=assumed.access_key_id, secret=assumed.secret_access_key)
    who._request_signer._credentials.token = assumed.session_token
    assert ":assumed-role/app/" in who.get_caller_identity()["Arn"]

    federated = service.issue("fed")
    assert federated.session_token
    assert federated.lease.principal.startswith("keyturn-")
    assert len(federated.lease.principal) <= 32

    with pytest.raises(Exception, match="cannot be renewed"):
        service.renew(assumed.lease.lease_id)
    outcome = service.revoke(federated.lease.lease_id)
    assert outcome.result is RevokeResult.REVOKED
    assert "cannot be revoked early" in outcome.detail
    assert users(aws) == before  # STS issue creates no IAM user


def test_revoke_prefix_over_many_leases(
    aws: LocalAws, service: LeaseService, policy_arn: str
) -> None:
    service.write_role(Role.build("ops", credential_type="iam_user", policy_arns=[policy_arn]))
    dev = [service.issue("dev").lease.lease_id for _ in range(25)]
    ops = service.issue("ops").lease
    outcomes = service.revoke_prefix("aws/creds/dev")
    assert sorted(o.lease_id for o in outcomes) == sorted(dev)
    assert all(o.result is RevokeResult.REVOKED for o in outcomes)
    assert users(aws) == [ops.principal]
    assert service.revoke_prefix("aws/creds/dev") == []


def test_two_revokers_at_once_never_double_act(
    aws: LocalAws, tmp_path: Path, service: LeaseService
) -> None:
    ids = [service.issue("dev").lease.lease_id for _ in range(12)]
    # two services, each with its own SQLite connection and boto3 clients
    first = make_service(aws, tmp_path / "leases.db")
    second = make_service(aws, tmp_path / "leases.db")
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda s: s.revoke_prefix("aws/creds/dev/"), [first, second])
    acted = [o.lease_id for o in [*a, *b] if o.result is RevokeResult.REVOKED]
    assert sorted(acted) == sorted(ids)  # each lease revoked by exactly one of them
    assert all(o.ok for o in [*a, *b])
    assert [x for x in users(aws) if x.startswith("keyturn")] == []


def test_tidy_revokes_expired_and_touches_only_users_its_store_names(
    aws: LocalAws, tmp_path: Path, service: LeaseService
) -> None:
    clock = Clock()
    svc = make_service(aws, tmp_path / "leases.db", clock)
    short = svc.issue("dev", timedelta(minutes=10)).lease
    long = svc.issue("dev", timedelta(hours=1)).lease
    iam = aws.client("iam")
    # tagged by this store, but no lease record names it: a claim keyturn cannot prove
    iam.create_user(
        UserName="keyturn-orphan",
        Tags=[
            {"Key": TAG_LEASE, "Value": "aws/creds/dev/lostlostlost"},
            {"Key": TAG_STORE, "Value": svc.store_id()},
        ],
    )
    iam.create_access_key(UserName="keyturn-orphan")
    # another installation's user and a user keyturn never made: never touched
    iam.create_user(
        UserName="keyturn-elsewhere",
        Tags=[
            {"Key": TAG_LEASE, "Value": "aws/creds/dev/otherotherot"},
            {"Key": TAG_STORE, "Value": "another-store"},
        ],
    )
    iam.create_user(UserName="keyturn-human")
    clock.shift = timedelta(minutes=20)
    report = svc.tidy()
    assert [o.lease_id for o in report.revoked] == [short.lease_id]
    assert report.orphans_removed == []
    [line] = report.not_ours
    assert line.startswith("user keyturn-orphan ")
    assert report.ok
    left = users(aws)
    assert short.principal not in left
    assert long.principal in left
    assert {"keyturn-orphan", "keyturn-elsewhere", "keyturn-human"} <= set(left)


SSH_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDJ3n3ZG0oB3U5e8y1m3m3yYd6J0Q8b0n0Q9m3jW0zJt1m2b1x"
    "q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yq"
    "zJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q"
    "0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7JdZ4qzqk8q0zq9J9yqzJ3Q0zq9q0m0d7Jd"
    "Z4qzqk8q0zq9J9yqzJ3Q0zq9 test@keyturn"
)
