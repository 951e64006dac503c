"""IAM reads that the audit (and later enforce and rotate) need, behind one small class.

Every list call goes through a paginator: moto returns everything in one page, so a missing
paginator would pass there and skip users past the first page on real AWS; the unit tests
prove pagination with botocore's Stubber.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.adapters.credential_report import fetch_report, parse_report
from keyturn.domain.model import AccessKey, KeyStatus, LastUse
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@dataclass(frozen=True, slots=True)
class KeyMetadata:
    key_id: str
    status: KeyStatus
    created: datetime


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    arn: str
    tags: dict[str, str]

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


class IamDirectory:
    """Read-only view of IAM users and their keys."""

    def __init__(self, client: IAMClient, *, report_wait_seconds: float = 120.0) -> None:
        self._iam = client
        self._report_wait = report_wait_seconds

    @requires("iam:GenerateCredentialReport", "iam:GetCredentialReport")
    def credential_report(self) -> Iterator[AccessKey]:
        content = fetch_report(self._iam, max_wait_seconds=self._report_wait)
        return parse_report(content)

    @requires("iam:ListAccessKeys")
    def list_access_keys(self, user: str) -> list[KeyMetadata]:
        """IAM: ListAccessKeys (paginated), oldest key first."""
        keys: list[KeyMetadata] = []
        with translate("iam:ListAccessKeys", user):
            for page in self._iam.get_paginator("list_access_keys").paginate(UserName=user):
                for meta in page["AccessKeyMetadata"]:
                    keys.append(
                        KeyMetadata(
                            key_id=meta["AccessKeyId"],
                            status=KeyStatus(meta["Status"]),
                            created=meta["CreateDate"],
                        )
                    )
        return sorted(keys, key=lambda key: key.created)

    @requires("iam:GetAccessKeyLastUsed")
    def last_used(self, key_id: str) -> LastUse | None:
        """IAM: GetAccessKeyLastUsed. None when the key was never used."""
        with translate("iam:GetAccessKeyLastUsed", key_id):
            found = self._iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
        date = found.get("LastUsedDate")
        if date is None:
            return None
        return LastUse(
            date=date,
            service=_known(found.get("ServiceName")),
            region=_known(found.get("Region")),
        )

    @requires("iam:GetUser")
    def get_user(self, user: str) -> UserInfo:
        """IAM: GetUser; raises NotFoundError for an unknown user."""
        with translate("iam:GetUser", user):
            found = self._iam.get_user(UserName=user)["User"]
        return UserInfo(
            name=found["UserName"],
            arn=found["Arn"],
            tags={tag["Key"]: tag["Value"] for tag in found.get("Tags", [])},
        )

    @requires("iam:ListUserTags")
    def user_tags(self, user: str) -> dict[str, str]:
        """IAM: ListUserTags (paginated)."""
        tags: dict[str, str] = {}
        with translate("iam:ListUserTags", user):
            for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
        return tags

    @requires("iam:GetGroup")
    def group_members(self, group: str) -> frozenset[str]:
        """IAM: GetGroup (paginated): one call per group instead of one per user."""
        members: set[str] = set()
        with translate("iam:GetGroup", group):
            for page in self._iam.get_paginator("get_group").paginate(GroupName=group):
                members.update(user["UserName"] for user in page["Users"])
        return frozenset(members)


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "N/A") else value
