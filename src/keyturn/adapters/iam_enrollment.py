"""Enrollment records as a sealed IAM user tag (`keyturn:enrolled`).

Who can write the tag: keyturn, and anyone with `iam:TagUser` on the user. So the value is
believed only when its seal verifies for this user, this store kind and this location
(keyturn.domain.enrollment); removing the tag (UntagUser) only ever stops rotation, the safe
direction, and the user is then reported as "due, not enrolled".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.domain.enrollment import ENROLL_TAG, Enrollment, parse, payload, sealed_text
from keyturn.domain.errors import BadInputError
from keyturn.domain.trust import Rejected
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from keyturn.ports import Authenticator


class IamTagEnrollments:
    def __init__(
        self,
        client: IAMClient,
        authenticator: Authenticator,
        store_kind: str,
        location: Callable[[str], str],
        *,
        account: str,
    ) -> None:
        self._iam = client
        self._auth = authenticator
        self._store = store_kind
        self._location = location
        self._account = account  # sealed in: another account's same-named user is not this one

    @requires("iam:ListUserTags")
    def read(self, user: str) -> Enrollment | Rejected | None:
        """IAM: ListUserTags (paginated)."""
        with translate("iam:ListUserTags", user):
            for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                for tag in page["Tags"]:
                    if tag["Key"] == ENROLL_TAG:
                        return self.check(user, tag["Value"])
        return None

    def check(self, user: str, value: str) -> Enrollment | Rejected:
        text, _, seal = value.rpartition(":")
        location = self._location(user)
        try:
            claimed = parse(user, text, location)
        except BadInputError as exc:
            return Rejected(user, str(exc))
        if claimed.store != self._store:
            return Rejected(user, f"enrolled for {claimed.store}, not {self._store}")
        if not self._auth.verify(sealed_text(claimed, self._account), seal):
            return Rejected(
                user,
                f"{ENROLL_TAG} tag not sealed by {self._auth.describe()} for {location}: "
                "forged, foreign, or the store path changed since enrollment",
            )
        return claimed

    @requires("iam:TagUser")
    def write(self, enrollment: Enrollment) -> None:
        """IAM: TagUser."""
        seal = self._auth.seal(sealed_text(enrollment, self._account))
        value = f"{payload(enrollment)}:{seal}"
        with translate("iam:TagUser", enrollment.user):
            self._iam.tag_user(UserName=enrollment.user, Tags=[{"Key": ENROLL_TAG, "Value": value}])

    @requires("iam:UntagUser")
    def remove(self, user: str) -> None:
        """IAM: UntagUser (idempotent: removing an absent tag succeeds)."""
        with translate("iam:UntagUser", user):
            self._iam.untag_user(UserName=user, TagKeys=[ENROLL_TAG])

    def location(self, user: str) -> str:
        return self._location(user)

    @property
    def store_kind(self) -> str:
        return self._store

    @requires("iam:GetAccountAuthorizationDetails")
    def tagged(self) -> dict[str, str | None]:
        """IAM: GetAccountAuthorizationDetails(Filter=User), paginated: every user, with its
        enrollment tag or None, in one call per page (the schedule checks hundreds)."""
        found: dict[str, str | None] = {}
        with translate("iam:GetAccountAuthorizationDetails"):
            pages = self._iam.get_paginator("get_account_authorization_details").paginate(
                Filter=["User"]
            )
            for page in pages:
                for user in page["UserDetailList"]:
                    found[user["UserName"]] = next(
                        (tag["Value"] for tag in user.get("Tags", []) if tag["Key"] == ENROLL_TAG),
                        None,
                    )
        return found
