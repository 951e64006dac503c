"""STS issue for assumed_role and federation_token leases.

STS credentials cannot be revoked before they expire (neither can Vault's): the lease's
expiry is the credential's, fixed at issue, so these leases are not renewable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyturn.adapters.aws_errors import translate
from keyturn.domain.leases import StsCredentials
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


class StsLeaseIssuer:
    def __init__(self, client: STSClient) -> None:
        self._sts = client

    @requires("sts:AssumeRole")
    def assume_role(
        self,
        role_arn: str,
        session_name: str,
        seconds: int,
        policy_arns: tuple[str, ...],
        policy: str | None,
    ) -> StsCredentials:
        """STS: AssumeRole; policy_arns and policy become session policies."""
        extra: dict[str, Any] = {}
        if policy_arns:
            extra["PolicyArns"] = [{"arn": arn} for arn in policy_arns]
        if policy:
            extra["Policy"] = policy
        with translate("sts:AssumeRole", role_arn):
            found = self._sts.assume_role(
                RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds, **extra
            )
        creds = found["Credentials"]
        return StsCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"],
            principal_arn=found["AssumedRoleUser"]["Arn"],
        )

    @requires("sts:GetFederationToken")
    def federation_token(
        self, name: str, seconds: int, policy_arns: tuple[str, ...], policy: str | None
    ) -> StsCredentials:
        """STS: GetFederationToken; the session's permissions are the intersection of the
        caller's and these policies."""
        extra: dict[str, Any] = {}
        if policy_arns:
            extra["PolicyArns"] = [{"arn": arn} for arn in policy_arns]
        if policy:
            extra["Policy"] = policy
        with translate("sts:GetFederationToken", name):
            found = self._sts.get_federation_token(Name=name, DurationSeconds=seconds, **extra)
        creds = found["Credentials"]
        return StsCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"],
            principal_arn=found["FederatedUser"]["Arn"],
        )
