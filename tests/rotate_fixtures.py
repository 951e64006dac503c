"""Fixtures for rotation tests: moto with authentication on, and invariant checks.

With authentication on, moto rejects unknown keys and checks IAM policies, so the tests'
own admin must be a real IAM user with a `Resource: "*"` policy, created *before*
authentication is turned on (the sandbox's fake key is rejected afterwards). A deactivated
key still authenticates in moto, so key status is always checked through IAM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
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
        return made

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
