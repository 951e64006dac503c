"""IAM writes for leased iam_user credentials: create a user, and remove one completely.

Removal is where Vault's engine fails in the field: it deletes keys, policies and groups,
then DeleteUser fails with DeleteConflict for a user someone gave a console password or an
MFA device, and the lease retries forever. Here the sweep also removes the login profile,
MFA devices, SSH keys and signing certificates, and on DeleteConflict lists service-specific
credentials (moto does not implement that call, real AWS does; it is only needed when
DeleteUser says something is left) and tries once more. A user that does not exist has
been revoked: NoSuchEntity ends the sweep successfully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from keyturn.adapters.aws_errors import error_code, translate
from keyturn.domain.errors import NotFoundError
from keyturn.domain.leases import TAG_LEASE, TAG_STORE, ManagedUser
from keyturn.domain.model import NewKeySecret
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_iam.type_defs import TagTypeDef


# Boundaries inside a revoke's sweep, in order. `checkpoint(step)` is called after each (a
# no-op except in crash tests, which SIGKILL the process there: KEYTURN_TEST_CRASH_AFTER).
SWEEP_STEPS = (
    "revoke_keys",
    "revoke_attached_policies",
    "revoke_inline_policies",
    "revoke_groups",
    "revoke_login_profile",
    "revoke_mfa",
    "revoke_ssh_keys",
    "revoke_certificates",
    "revoke_user_deleted",
)


def _no_checkpoint(step: str) -> None:
    return None


class DeleteConflict(Exception):
    """DeleteUser refused: something still attached to the user."""


class IamLeaseAdmin:
    def __init__(
        self, client: IAMClient, *, checkpoint: Callable[[str], None] = _no_checkpoint
    ) -> None:
        self._iam = client
        self._checkpoint = checkpoint

    # -- issue --------------------------------------------------------------------------

    @requires("iam:CreateUser", "iam:TagUser")
    def create_user(self, name: str, path: str, boundary: str | None, tags: dict[str, str]) -> None:
        """IAM: CreateUser with path, permissions boundary and tags in one call."""
        tag_list: list[TagTypeDef] = [{"Key": key, "Value": value} for key, value in tags.items()]
        with translate("iam:CreateUser", name):
            if boundary:
                self._iam.create_user(
                    UserName=name, Path=path, PermissionsBoundary=boundary, Tags=tag_list
                )
            else:
                self._iam.create_user(UserName=name, Path=path, Tags=tag_list)

    @requires("iam:AttachUserPolicy")
    def attach_user_policy(self, user: str, policy_arn: str) -> None:
        with translate("iam:AttachUserPolicy", f"{user} {policy_arn}"):
            self._iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)

    @requires("iam:PutUserPolicy")
    def put_user_policy(self, user: str, policy_name: str, document: str) -> None:
        with translate("iam:PutUserPolicy", user):
            self._iam.put_user_policy(
                UserName=user, PolicyName=policy_name, PolicyDocument=document
            )

    @requires("iam:AddUserToGroup")
    def add_user_to_group(self, user: str, group: str) -> None:
        with translate("iam:AddUserToGroup", f"{user} {group}"):
            self._iam.add_user_to_group(UserName=user, GroupName=group)

    @requires("iam:CreateAccessKey", "iam:ListAccessKeys", "iam:DeleteAccessKey")
    def create_access_key(self, user: str) -> NewKeySecret:
        """IAM: CreateAccessKey on the lease's own, just-created user.

        CreateAccessKey is not idempotent, and botocore retries a call whose answer was
        lost (a read timeout, a dropped connection, a 5xx) although IAM may have done the
        work: each lost answer is then an active key whose secret nobody has. So when the
        answer says it took more than one attempt, every other key on the user is deleted
        before the credential is handed out. The user was made by keyturn for this lease
        moments ago, so any other key on it is one of those. The usual answer (no retry)
        costs no extra call.
        """
        with translate("iam:CreateAccessKey", user):
            answer = self._iam.create_access_key(UserName=user)
        key = answer["AccessKey"]
        if answer.get("ResponseMetadata", {}).get("RetryAttempts", 0):
            self._delete_keys_except(user, key["AccessKeyId"])
        return NewKeySecret(key["AccessKeyId"], key["SecretAccessKey"])

    def _delete_keys_except(self, user: str, keep: str) -> None:
        for page in self._pages("list_access_keys", "iam:ListAccessKeys", user):
            for found in page["AccessKeyMetadata"]:
                key_id = found["AccessKeyId"]
                if key_id != keep:
                    _gone_ok(
                        "iam:DeleteAccessKey",
                        key_id,
                        self._iam.delete_access_key,
                        UserName=user,
                        AccessKeyId=key_id,
                    )

    # -- revoke -------------------------------------------------------------------------

    @requires(
        "iam:ListAccessKeys",
        "iam:DeleteAccessKey",
        "iam:ListAttachedUserPolicies",
        "iam:DetachUserPolicy",
        "iam:ListUserPolicies",
        "iam:DeleteUserPolicy",
        "iam:ListGroupsForUser",
        "iam:RemoveUserFromGroup",
        "iam:DeleteLoginProfile",
        "iam:ListMFADevices",
        "iam:DeactivateMFADevice",
        "iam:DeleteVirtualMFADevice",
        "iam:ListSSHPublicKeys",
        "iam:DeleteSSHPublicKey",
        "iam:ListSigningCertificates",
        "iam:DeleteSigningCertificate",
        "iam:ListServiceSpecificCredentials",
        "iam:DeleteServiceSpecificCredential",
        "iam:DeleteUser",
    )
    def delete_user_everything(self, user: str) -> bool:
        """Remove all that blocks DeleteUser, then the user. False when it was already gone."""
        try:
            self._sweep(user)
            try:
                self._delete_user(user)
            except DeleteConflict:
                self._delete_service_credentials(user)
                self._sweep(user)  # something may have been added meanwhile
                self._delete_user(user)
        except NotFoundError:
            return False
        self._checkpoint("revoke_user_deleted")
        return True

    def _sweep(self, user: str) -> None:
        iam = self._iam
        for page in self._pages("list_access_keys", "iam:ListAccessKeys", user):
            for key in page["AccessKeyMetadata"]:
                key_id = key["AccessKeyId"]
                _gone_ok(
                    "iam:DeleteAccessKey",
                    key_id,
                    iam.delete_access_key,
                    UserName=user,
                    AccessKeyId=key_id,
                )
        self._checkpoint("revoke_keys")
        for page in self._pages(
            "list_attached_user_policies", "iam:ListAttachedUserPolicies", user
        ):
            for policy in page["AttachedPolicies"]:
                arn = policy["PolicyArn"]
                _gone_ok(
                    "iam:DetachUserPolicy",
                    arn,
                    iam.detach_user_policy,
                    UserName=user,
                    PolicyArn=arn,
                )
        self._checkpoint("revoke_attached_policies")
        for page in self._pages("list_user_policies", "iam:ListUserPolicies", user):
            for name in page["PolicyNames"]:
                _gone_ok(
                    "iam:DeleteUserPolicy",
                    name,
                    iam.delete_user_policy,
                    UserName=user,
                    PolicyName=name,
                )
        self._checkpoint("revoke_inline_policies")
        for page in self._pages("list_groups_for_user", "iam:ListGroupsForUser", user):
            for group in page["Groups"]:
                name = group["GroupName"]
                _gone_ok(
                    "iam:RemoveUserFromGroup",
                    name,
                    iam.remove_user_from_group,
                    UserName=user,
                    GroupName=name,
                )
        self._checkpoint("revoke_groups")
        # No login profile answers NoSuchEntity too; the user's existence was proven above.
        _gone_ok("iam:DeleteLoginProfile", user, iam.delete_login_profile, UserName=user)
        self._checkpoint("revoke_login_profile")
        for page in self._pages("list_mfa_devices", "iam:ListMFADevices", user):
            for device in page["MFADevices"]:
                serial = device["SerialNumber"]
                _gone_ok(
                    "iam:DeactivateMFADevice",
                    serial,
                    iam.deactivate_mfa_device,
                    UserName=user,
                    SerialNumber=serial,
                )
                if serial.startswith("arn:"):  # virtual devices; hardware ones cannot be
                    _gone_ok(
                        "iam:DeleteVirtualMFADevice",
                        serial,
                        iam.delete_virtual_mfa_device,
                        SerialNumber=serial,
                    )
        self._checkpoint("revoke_mfa")
        for page in self._pages("list_ssh_public_keys", "iam:ListSSHPublicKeys", user):
            for ssh in page["SSHPublicKeys"]:
                ssh_id = ssh["SSHPublicKeyId"]
                _gone_ok(
                    "iam:DeleteSSHPublicKey",
                    ssh_id,
                    iam.delete_ssh_public_key,
                    UserName=user,
                    SSHPublicKeyId=ssh_id,
                )
        self._checkpoint("revoke_ssh_keys")
        for page in self._pages("list_signing_certificates", "iam:ListSigningCertificates", user):
            for cert in page["Certificates"]:
                cert_id = cert["CertificateId"]
                _gone_ok(
                    "iam:DeleteSigningCertificate",
                    cert_id,
                    iam.delete_signing_certificate,
                    UserName=user,
                    CertificateId=cert_id,
                )
        self._checkpoint("revoke_certificates")

    def _delete_service_credentials(self, user: str) -> None:
        # No paginator exists for this call; AWS returns every credential in one answer.
        with translate("iam:ListServiceSpecificCredentials", user):
            found = self._iam.list_service_specific_credentials(UserName=user)
        for cred in found.get("ServiceSpecificCredentials", []):
            cred_id = cred["ServiceSpecificCredentialId"]
            _gone_ok(
                "iam:DeleteServiceSpecificCredential",
                cred_id,
                self._iam.delete_service_specific_credential,
                UserName=user,
                ServiceSpecificCredentialId=cred_id,
            )

    def _delete_user(self, user: str) -> None:
        with translate("iam:DeleteUser", user):
            try:
                self._iam.delete_user(UserName=user)
            except ClientError as exc:
                if error_code(exc) == "DeleteConflict":
                    raise DeleteConflict(user) from exc
                raise

    def _pages(self, operation: str, action: str, user: str) -> list[Any]:
        """Every page of one per-user IAM list call (moto answers in one page; AWS may not),
        read in full before anything is deleted, so deleting cannot shift a marker."""
        with translate(action, user):
            paginator = self._iam.get_paginator(operation)  # type: ignore[call-overload]
            return list(paginator.paginate(UserName=user))

    # -- tidy ---------------------------------------------------------------------------

    @requires("iam:ListUsers", "iam:ListUserTags")
    def managed_users(self, path_prefixes: list[str], name_prefix: str) -> Iterator[ManagedUser]:
        """Users under these paths, named with keyturn's prefix, carrying its lease tag.
        ListUsers does not return tags (on AWS either), so each candidate named with the
        prefix costs one ListUserTags; the name filter keeps that to keyturn's own users."""
        seen: set[str] = set()
        for prefix in sorted(set(path_prefixes)):
            with translate("iam:ListUsers", prefix):
                pages = list(self._iam.get_paginator("list_users").paginate(PathPrefix=prefix))
            for page in pages:
                for user in page["Users"]:
                    name = user["UserName"]
                    if name in seen or not name.startswith(name_prefix):
                        continue
                    seen.add(name)
                    tags = self._tags(name)
                    if tags is not None and TAG_LEASE in tags:
                        yield ManagedUser(
                            name=name,
                            created=user["CreateDate"],
                            lease_id=tags[TAG_LEASE],
                            store=tags.get(TAG_STORE),
                        )

    def _tags(self, user: str) -> dict[str, str] | None:
        tags: dict[str, str] = {}
        try:
            with translate("iam:ListUserTags", user):
                for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                    tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
        except NotFoundError:
            return None  # deleted while we looked
        return tags


def _gone_ok(action: str, subject: str, call: Callable[..., object], **params: str) -> None:
    """One delete; NoSuchEntity means someone (a concurrent revoker) already did it."""
    try:
        with translate(action, subject):
            call(**params)
    except NotFoundError:
        return
