"""The only place that builds boto3 and hvac clients (STYLE anti-pattern 3).

Shells call `build_*` with validated settings; services and adapters receive ready clients.
Nothing is created at import time, so a warm Lambda container starts each invocation clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from keyturn import __version__
from keyturn.adapters.aws_errors import translate
from keyturn.adapters.clock import SystemClock
from keyturn.adapters.iam import IamDirectory
from keyturn.config import Settings
from keyturn.services.audit import AuditService

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

# IAM is a global service; any commercial region signs for it.
DEFAULT_REGION = "us-east-1"


@dataclass
class Aws:
    """A boto3 session with keyturn's client configuration."""

    session: boto3.session.Session
    config: Config
    endpoint_url: str | None

    def client(self, service: str) -> Any:
        return self.session.client(
            service,  # type: ignore[call-overload]
            config=self.config,
            endpoint_url=self.endpoint_url,
        )

    def iam(self) -> IAMClient:
        client: IAMClient = self.client("iam")
        return client

    def sts(self) -> STSClient:
        client: STSClient = self.client("sts")
        return client


def client_config(max_attempts: int, workers: int) -> Config:
    """Adaptive retries (client-side rate limiting plus jittered backoff on throttling)."""
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        max_pool_connections=max(10, workers * 2),
        connect_timeout=5,
        read_timeout=60,
        user_agent_extra=f"keyturn/{__version__}",
    )


def build_aws(settings: Settings) -> Aws:
    """Session from the standard chain (`--profile`, env, SSO, instance role), then the
    optional `role_arn`, assumed with auto-refreshing credentials."""
    aws = settings.aws
    with translate("loading the AWS profile", aws.profile):
        session = boto3.session.Session(profile_name=aws.profile, region_name=aws.region)
    if not session.region_name:
        session = boto3.session.Session(profile_name=aws.profile, region_name=DEFAULT_REGION)
    config = client_config(aws.max_attempts, aws.workers)
    if aws.role_arn:
        session = _assume_role(session, aws.role_arn, config, aws.endpoint_url)
    return Aws(session=session, config=config, endpoint_url=aws.endpoint_url)


def _assume_role(
    source: boto3.session.Session, role_arn: str, config: Config, endpoint_url: str | None
) -> boto3.session.Session:
    core = source._session
    source_credentials = core.get_credentials()
    if source_credentials is None:
        with translate("sts:AssumeRole", role_arn):
            source.client("sts", config=config, endpoint_url=endpoint_url).get_caller_identity()

    def client_creator(service: str, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", endpoint_url)
        kwargs.setdefault("config", config)
        return core.create_client(service, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=client_creator,
        source_credentials=source_credentials,
        role_arn=role_arn,
        extra_args={"RoleSessionName": f"keyturn-{__version__}"},
    )
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    assumed = boto3.session.Session(region_name=source.region_name)
    assumed._session._credentials = credentials  # type: ignore[attr-defined]
    return assumed


def build_audit(settings: Settings, aws: Aws | None = None) -> AuditService:
    aws = aws or build_aws(settings)
    directory = IamDirectory(aws.iam(), report_wait_seconds=settings.aws.report_wait_seconds)
    return AuditService(
        directory,
        SystemClock(),
        settings.policy.to_domain(),
        contact_tag=settings.policy.contact_tag,
        workers=settings.aws.workers,
    )
