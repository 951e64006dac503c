"""IAM and STS for the exposed-key response: whose key is it, and the sealed incident tag.

`KeyOwners` answers "which account, which user" from AWS's own records (STS
GetAccessKeyInfo, IAM GetAccessKeyLastUsed), never from the event. `IamIncidentTags` keeps
the response's progress as the sealed user tag `keyturn:incident:<KEYID>`
(keyturn.domain.quarantine): anyone with iam:TagUser can write that tag too, so `read`
hands back a `Rejected` for a value whose seal does not verify for this account, user and
key, and the service then acts as if there were no record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import NotFoundError
from keyturn.domain.quarantine import IncidentMarks, incident_tag, sealed_message
from keyturn.domain.trust import Rejected
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

    from keyturn.ports import Authenticator


class KeyOwners:
    def __init__(self, iam: IAMClient, sts: STSClient) -> None:
        self._iam = iam
        self._sts = sts

    @requires("sts:GetAccessKeyInfo")
    def account_of(self, key_id: str) -> str:
        """STS: GetAccessKeyInfo: the account a key id belongs to (any account's key)."""
        with translate("sts:GetAccessKeyInfo", key_id):
            return str(self._sts.get_access_key_info(AccessKeyId=key_id)["Account"])

    @requires("iam:GetAccessKeyLastUsed")
    def owner(self, key_id: str) -> str | None:
        """IAM: GetAccessKeyLastUsed: the user AWS says owns the key; None when IAM does not
        know the key (deleted, or never in this account)."""
        try:
            with translate("iam:GetAccessKeyLastUsed", key_id):
                answer: Any = self._iam.get_access_key_last_used(AccessKeyId=key_id)
        except NotFoundError:
            return None
        user = answer.get("UserName")
        return str(user) if user else None


class IamIncidentTags:
    """The incident's progress, on the key's own user, sealed."""

    def __init__(self, iam: IAMClient, authenticator: Authenticator, account: str) -> None:
        self._iam = iam
        self._auth = authenticator
        self._account = account

    @requires("iam:ListUserTags")
    def read(self, user: str, key_id: str) -> IncidentMarks | Rejected | None:
        """IAM: ListUserTags (paginated); the marks only if keyturn sealed them here."""
        wanted = incident_tag(key_id)
        with translate("iam:ListUserTags", user):
            for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                for tag in page["Tags"]:
                    if tag["Key"] == wanted:
                        return self.check(user, key_id, tag["Value"])
        return None

    def check(self, user: str, key_id: str, value: str) -> IncidentMarks | Rejected:
        text, separator, seal = value.rpartition(":")
        if not separator or not seal:
            return Rejected(user, f"{incident_tag(key_id)} carries no seal")
        if not self._auth.verify(sealed_message(self._account, user, key_id, text), seal):
            return Rejected(
                user,
                f"{incident_tag(key_id)} not sealed by {self._auth.describe()} for this "
                "account, user and key (forged, copied, or sealed with another key)",
            )
        try:
            return IncidentMarks.decode(text)
        except ValueError:
            return Rejected(user, f"{incident_tag(key_id)} is sealed but unreadable")

    @requires("iam:TagUser")
    def write(self, user: str, key_id: str, marks: IncidentMarks) -> None:
        """IAM: TagUser (replaces the value: each write holds every mark so far)."""
        text = marks.encode()
        seal = self._auth.seal(sealed_message(self._account, user, key_id, text))
        with translate("iam:TagUser", user):
            self._iam.tag_user(
                UserName=user, Tags=[{"Key": incident_tag(key_id), "Value": f"{text}:{seal}"}]
            )


# AWS attaches one of these managed policies to a user whose key it found exposed. Only
# AWS's own ARNs count (arn:aws:iam::aws:policy/...): a customer policy of the same name is
# someone's claim.
AWS_QUARANTINE_POLICY = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine"


@requires("iam:ListAttachedUserPolicies")
def aws_quarantine_policies(iam: IAMClient, user: str) -> list[str]:
    """IAM: ListAttachedUserPolicies (paginated): the names of AWS's compromised-key
    quarantine policies attached to `user` (`AWSCompromisedKeyQuarantine`, `...V2`,
    `...V3`), a fact AWS writes; empty when none is."""
    found: list[str] = []
    with translate("iam:ListAttachedUserPolicies", user):
        for page in iam.get_paginator("list_attached_user_policies").paginate(UserName=user):
            for policy in page["AttachedPolicies"]:
                arn = policy.get("PolicyArn", "")
                if arn.startswith(AWS_QUARANTINE_POLICY):
                    found.append(arn.rpartition("/")[2])
    return found
