"""IAM key writes for rotation, and the rotation journal kept as an IAM user tag.

The journal lives on the user it is about (tag `keyturn:rotation`), so it needs no extra
infrastructure, survives a `kill -9` of the CLI and is shared by the CLI and the Lambda.
A tag write is atomic per user, which is all the write-ahead intent needs.

Who can write that tag: keyturn, and anyone with `iam:TagUser` on the user (often the user
itself). So every entry carries a seal (keyturn.domain.trust) and `read` returns a
`Rejected`, never a record, for an entry whose seal does not verify.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import BadInputError
from keyturn.domain.model import KeyStatus, LastUse, NewKeySecret
from keyturn.domain.rotation import IamKey, RotationRecord, decode, encode
from keyturn.domain.trust import JOURNAL_PURPOSE, Rejected, message
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from keyturn.ports import Authenticator

JOURNAL_TAG = "keyturn:rotation"


class IamKeys:
    """Create, (de)activate and delete access keys; every call translated once."""

    def __init__(self, client: IAMClient) -> None:
        self._iam = client

    @requires("iam:ListAccessKeys")
    def list_keys(self, user: str) -> list[IamKey]:
        """IAM: ListAccessKeys (paginated), oldest first."""
        keys: list[IamKey] = []
        with translate("iam:ListAccessKeys", user):
            for page in self._iam.get_paginator("list_access_keys").paginate(UserName=user):
                keys.extend(
                    IamKey(
                        key_id=meta["AccessKeyId"],
                        status=KeyStatus(meta["Status"]),
                        created=meta["CreateDate"],
                    )
                    for meta in page["AccessKeyMetadata"]
                )
        return sorted(keys, key=lambda key: key.created)

    @requires("iam:CreateAccessKey")
    def create_key(self, user: str) -> NewKeySecret:
        """IAM: CreateAccessKey. The caller must store the result before anything else."""
        with translate("iam:CreateAccessKey", user):
            created = self._iam.create_access_key(UserName=user)["AccessKey"]
        return NewKeySecret(created["AccessKeyId"], created["SecretAccessKey"])

    @requires("iam:UpdateAccessKey")
    def set_active(self, user: str, key_id: str, active: bool) -> None:
        """IAM: UpdateAccessKey (idempotent: setting the current status again is a no-op)."""
        with translate("iam:UpdateAccessKey", f"{user} {key_id}"):
            self._iam.update_access_key(
                UserName=user, AccessKeyId=key_id, Status="Active" if active else "Inactive"
            )

    @requires("iam:DeleteAccessKey")
    def delete_key(self, user: str, key_id: str) -> None:
        """IAM: DeleteAccessKey; a key already gone counts as deleted (idempotent)."""
        from keyturn.domain.errors import NotFoundError

        try:
            with translate("iam:DeleteAccessKey", f"{user} {key_id}"):
                self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
        except NotFoundError:
            return

    @requires("iam:GetAccessKeyLastUsed")
    def last_used(self, key_id: str) -> LastUse | None:
        """IAM: GetAccessKeyLastUsed: when, through which service, in which region the key
        was last used (AWS says "N/A" for the last two when it never was: None here)."""
        with translate("iam:GetAccessKeyLastUsed", key_id):
            found = self._iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
        date = found.get("LastUsedDate")
        if date is None:
            return None

        def known(value: str | None) -> str | None:
            return None if not value or value == "N/A" else value

        return LastUse(date, known(found.get("ServiceName")), known(found.get("Region")))


class IamTagJournal:
    """RotationJournal on the IAM user's `keyturn:rotation` tag, each entry sealed."""

    def __init__(self, client: IAMClient, authenticator: Authenticator, account: str) -> None:
        self._iam = client
        self._auth = authenticator
        # Sealed in: an entry copied from a same-named user of another account (one local
        # key serves a CLI's whole fan-out) is no entry here.
        self._account = account

    @requires("iam:ListUserTags")
    def read(self, user: str) -> RotationRecord | Rejected | None:
        """IAM: ListUserTags (paginated); the entry only if keyturn sealed it."""
        with translate("iam:ListUserTags", user):
            for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                for tag in page["Tags"]:
                    if tag["Key"] == JOURNAL_TAG:
                        return self.open(user, tag["Value"])
        return None

    def open(self, user: str, value: str) -> RotationRecord | Rejected:
        """Check the seal first, then parse: an unsealed text is never even interpreted."""
        payload, _, seal = value.rpartition(":")
        if not payload or not seal:
            return Rejected(user, f"{JOURNAL_TAG} tag carries no seal")
        if not self._auth.verify(message(JOURNAL_PURPOSE, user, self._account, payload), seal):
            return Rejected(
                user, f"{JOURNAL_TAG} tag not sealed by {self._auth.describe()}: forged or foreign"
            )
        try:
            return decode(user, payload)
        except BadInputError as exc:  # sealed but unreadable: a newer format, never acted on
            return Rejected(user, str(exc))

    @requires("iam:TagUser")
    def write(self, record: RotationRecord) -> None:
        """IAM: TagUser (overwrites the tag: the journal keeps the latest rotation)."""
        payload = encode(record)
        sealed = message(JOURNAL_PURPOSE, record.user, self._account, payload)
        value = f"{payload}:{self._auth.seal(sealed)}"
        with translate("iam:TagUser", record.user):
            self._iam.tag_user(UserName=record.user, Tags=[{"Key": JOURNAL_TAG, "Value": value}])

    @requires("iam:GetAccountAuthorizationDetails")
    def users_with_records(self) -> list[str]:
        """IAM: GetAccountAuthorizationDetails(Filter=User), paginated: tags for every user
        in one call per page, instead of one ListUserTags per user."""
        found: list[str] = []
        with translate("iam:GetAccountAuthorizationDetails"):
            pages = self._iam.get_paginator("get_account_authorization_details").paginate(
                Filter=["User"]
            )
            for page in pages:
                for user in page["UserDetailList"]:
                    if any(tag["Key"] == JOURNAL_TAG for tag in user.get("Tags", [])):
                        found.append(user["UserName"])
        return found


@requires("iam:GetAccountAuthorizationDetails")
def users_with_tags(client: IAMClient, wanted: dict[str, str]) -> list[str]:
    """Users carrying every KEY=VALUE of `wanted`, from GetAccountAuthorizationDetails pages
    (tags included: one call per page instead of one ListUserTags per user)."""
    found: list[str] = []
    with translate("iam:GetAccountAuthorizationDetails"):
        pages = client.get_paginator("get_account_authorization_details").paginate(Filter=["User"])
        for page in pages:
            for user in page["UserDetailList"]:
                tags = {tag["Key"]: tag["Value"] for tag in user.get("Tags", [])}
                if all(tags.get(key) == value for key, value in wanted.items()):
                    found.append(user["UserName"])
    return found
