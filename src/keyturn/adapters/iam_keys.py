"""The IAM writes enforcement makes: key status, key deletion, and its state tags.

Each is idempotent on its own: setting a status twice, deleting a key that is already gone
(a retried run) and removing a tag that is not there all end in the same state, so a run
that stops halfway can simply run again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import NotFoundError
from keyturn.domain.model import KeyStatus
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


class IamKeyWriter:
    def __init__(self, client: IAMClient) -> None:
        self._iam = client

    @requires("iam:UpdateAccessKey")
    def set_status(self, user: str, key_id: str, status: KeyStatus) -> None:
        """IAM: UpdateAccessKey."""
        with translate("iam:UpdateAccessKey", f"{user} {key_id}"):
            self._iam.update_access_key(UserName=user, AccessKeyId=key_id, Status=status.value)

    @requires("iam:DeleteAccessKey")
    def delete_key(self, user: str, key_id: str) -> bool:
        """IAM: DeleteAccessKey. False when the key was already gone."""
        try:
            with translate("iam:DeleteAccessKey", f"{user} {key_id}"):
                self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
        except NotFoundError:
            return False
        return True

    @requires("iam:TagUser")
    def tag_user(self, user: str, tags: dict[str, str]) -> None:
        """IAM: TagUser (overwrites the values of these keys only)."""
        with translate("iam:TagUser", user):
            self._iam.tag_user(
                UserName=user, Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
            )

    @requires("iam:UntagUser")
    def untag_user(self, user: str, keys: list[str]) -> None:
        """IAM: UntagUser (absent keys are not an error)."""
        with translate("iam:UntagUser", user):
            self._iam.untag_user(UserName=user, TagKeys=keys)
