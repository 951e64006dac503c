"""Fixtures for rotation tests: moto with authentication on, and invariant checks.

With authentication on, moto rejects unknown keys and checks IAM policies, so the tests'
own admin must be a real IAM user with a `Resource: "*"` policy, created *before*
authentication is turned on (the sandbox's fake key is rejected afterwards). A deactivated
key still authenticates in moto, so key status is always checked through IAM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from keyturn.sandbox.aws import REGION, LocalAws, SeededKey

ADMIN = "keyturn-admin"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass
class AuthedAws:
    """moto with auth on; `admin` signs the tests' own calls and keyturn's."""

    server: LocalAws
    admin: SeededKey
    known: dict[str, SeededKey] = field(default_factory=dict)
    # When set, seed_user also enrolls each user for rotation under these settings (the
    # environment keyturn will run with), as an operator would have done before.
    enroll_with: Mapping[str, str] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, service: str) -> Any:
        return self.server.client(service, key_id=self.admin.key_id, secret=self.admin.secret)

    def env(self) -> dict[str, str]:
        env = self.server.env()
        env["AWS_ACCESS_KEY_ID"] = self.admin.key_id
        env["AWS_SECRET_ACCESS_KEY"] = self.admin.secret
        return env

    def seed_user(
        self,
        name: str,
        *,
        keys: int = 1,
        inactive: int = 0,
        age_days: float = 90,
        tags: dict[str, str] | None = None,
        enroll: bool = True,
    ) -> list[SeededKey]:
        iam = self.client("iam")
        iam.create_user(
            UserName=name, Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()]
        )
        made = []
        for index in range(keys):
            created = iam.create_access_key(UserName=name)["AccessKey"]
            key = SeededKey(name, created["AccessKeyId"], created["SecretAccessKey"])
            if index >= keys - inactive:
                iam.update_access_key(UserName=name, AccessKeyId=key.key_id, Status="Inactive")
            self.server.backdate(key.key_id, age_days + keys - index)
            self.known[key.key_id] = key
            made.append(key)
        if enroll and self.enroll_with is not None:
            self.enroll(name, environ=self.enroll_with)
        return made

    def enroll(self, *users: str, environ: Mapping[str, str] | None = None) -> None:
        """Record users as enrolled without the first rotation (see `enroll_users`)."""
        enroll_users(*users, environ=environ)

    def keys(self, user: str) -> dict[str, str]:
        """key id -> status, through IAM (moto lets inactive keys authenticate)."""
        found = self.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        return {meta["AccessKeyId"]: meta["Status"] for meta in found}

    def authenticates(self, key_id: str, secret: str) -> bool:
        sts = boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        try:
            sts.get_caller_identity()
        except Exception:  # any failure means "does not authenticate"
            return False
        return True


@pytest.fixture
def authed(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthedAws]:
    iam = aws.client("iam")
    iam.create_user(UserName=ADMIN)
    iam.put_user_policy(UserName=ADMIN, PolicyName="all", PolicyDocument=ALLOW_ALL)
    created = iam.create_access_key(UserName=ADMIN)["AccessKey"]
    admin = SeededKey(ADMIN, created["AccessKeyId"], created["SecretAccessKey"])
    aws.set_authentication(True)
    world = AuthedAws(aws, admin)
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield world
    finally:
        aws.set_authentication(False)


def enroll_users(*users: str, environ: Mapping[str, str] | None = None) -> None:
    """Record users as enrolled (sealed, as `keyturn enroll` records them) without the first
    rotation: the stand-in for "an operator enrolled them earlier" in tests that are about
    rotation itself, under the settings of `environ` (default: this process's)."""
    from unittest import mock

    from keyturn.adapters.iam_enrollment import IamTagEnrollments
    from keyturn.config import load_settings
    from keyturn.domain.enrollment import Enrollment
    from keyturn.wiring import build_authenticator, build_aws, build_store

    wanted = dict(environ if environ is not None else os.environ)
    # Built under exactly that environment (the local key's directory, Vault's CA, the
    # endpoint), as the keyturn process that reads the record later will be.
    with mock.patch.dict(os.environ, wanted, clear=True):
        chosen = load_settings(environ=wanted).settings
        aws = build_aws(chosen)
        store = build_store(chosen, aws)
        registry = IamTagEnrollments(
            aws.iam(),
            build_authenticator(chosen, aws),
            chosen.rotate.store,
            store.location,
            account=aws.account_id(),
        )
        now = datetime.now(UTC)
        for user in users:
            registry.write(Enrollment(user, chosen.rotate.store, store.location(user), now))


def secretsmanager_cli_env(authed: AuthedAws, **extra: str) -> dict[str, str]:
    """The environment of a `keyturn` subprocess rotating into Secrets Manager on `authed`:
    this process's environment, the admin's keys, a fresh path prefix, no verify wait."""
    import uuid

    merged = dict(os.environ)
    merged.update(authed.env())
    merged.update(
        {
            "KEYTURN_ROTATE_STORE": "secretsmanager",
            "KEYTURN_ROTATE_PATH": f"t{uuid.uuid4().hex[:8]}/{{user}}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
            **extra,
        }
    )
    return merged
