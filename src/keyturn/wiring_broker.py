"""Wiring for the lease broker, both sides (kept beside wiring.py, not in it, so the broker's
builders stay in one small module; wiring.py remains where boto3 clients are made).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from keyturn.adapters.broker_client import BrokerClient
from keyturn.adapters.clock import SystemClock
from keyturn.adapters.replay_dynamodb import DynamoReplayGuard
from keyturn.adapters.sts_identity import StsProofVerifier
from keyturn.config import LoadedSettings, Settings
from keyturn.domain.errors import ConfigError, NoCredentialsError
from keyturn.ports import EventSink
from keyturn.services.broker import (
    BrokerOptions,
    BrokerService,
    MemoryReplayGuard,
    ReplayGuard,
)
from keyturn.services.caller_limits import CallerLimits
from keyturn.wiring import Aws, build_aws, build_leases


def sts_url(settings: Settings, aws: Aws) -> str:
    """Where proofs are signed for (client) and executed (broker): `broker.sts_url`, else
    the STS endpoint boto3 resolves for these settings (AWS_ENDPOINT_URL included)."""
    chosen = settings.broker.sts_url or str(aws.sts().meta.endpoint_url)
    parts = urlsplit(chosen)
    return f"{parts.scheme}://{parts.netloc}"


def build_broker(
    loaded: LoadedSettings,
    sink: EventSink,
    *,
    default_server_id: str | None = None,
    aws: Aws | None = None,
    limits: CallerLimits | None = None,
    memory: MemoryReplayGuard | None = None,
) -> BrokerService:
    """`limits` and `memory` outlive one request where the caller keeps them (the Lambda
    handler, per warm instance); with the DynamoDB store, used proofs are recorded in its
    table instead, so one use holds across instances."""
    settings = loaded.settings
    broker = settings.broker
    server_id = broker.server_id or default_server_id
    if not server_id:
        raise ConfigError(
            "broker.server_id is not set (KEYTURN_BROKER_SERVER_ID): the audience every "
            "proof must name"
        )
    aws = aws or build_aws(settings)
    verifier = StsProofVerifier(sts_url(settings, aws))
    replay: ReplayGuard = memory or MemoryReplayGuard()
    if settings.leases.store == "dynamodb":  # several instances: one use across all
        replay = DynamoReplayGuard(aws.client("dynamodb"), settings.leases.dynamodb_table)
    return BrokerService(
        build_leases(loaded, aws),
        verifier,
        BrokerOptions(
            server_id=server_id,
            sts_host=verifier.host,
            proof_max_age=timedelta(seconds=broker.proof_max_age_seconds),
        ),
        SystemClock(),
        limits or build_caller_limits(settings),
        replay,
        sink,
    )


def build_caller_limits(settings: Settings) -> CallerLimits:
    return CallerLimits(settings.broker.caller_rate_per_minute, settings.broker.caller_burst)


def build_broker_client(settings: Settings, url: str | None = None) -> BrokerClient:
    chosen = url or settings.broker.url
    if not chosen:
        raise ConfigError("no broker: pass --broker URL or set broker.url")
    aws = build_aws(settings)
    credentials = aws.session.get_credentials()
    if credentials is None:
        raise NoCredentialsError(
            "no AWS credentials to prove who you are to the broker (the standard chain found none)"
        )
    return BrokerClient(
        chosen,
        credentials,
        sts_url=sts_url(settings, aws),
        region=str(aws.session.region_name),
        server_id=settings.broker.server_id,
    )
