"""The only place that builds boto3 and hvac clients (STYLE anti-pattern 3).

Shells call `build_*` with validated settings; services and adapters receive ready clients.
Nothing is created at import time, so a warm Lambda container starts each invocation clean.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from keyturn import __version__
from keyturn.adapters import log_redaction
from keyturn.adapters.aws_errors import DeadlineExceededError, translate
from keyturn.adapters.clock import SystemClock
from keyturn.adapters.cloudtrail import (
    CloudTrailActivity,
    EnabledRegions,
    FixedRegions,
    Regions,
)
from keyturn.adapters.iam import IamDirectory
from keyturn.adapters.iam_keys import IamKeyWriter
from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore, default_path
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.adapters.organizations import OrganizationDirectory
from keyturn.adapters.pacing import LOOKUP_EVENTS, Pacer
from keyturn.adapters.ses import SesMailer
from keyturn.adapters.sns import RunNotice, SnsNotices
from keyturn.adapters.sqs import AccountQueue
from keyturn.config import LoadedSettings, PacingSettings, Settings
from keyturn.domain.errors import BadInputError, ConfigError
from keyturn.domain.leases import Role, parse_duration
from keyturn.permissions import requires
from keyturn.ports import Authenticator, Clock, EventSink, LeaseStore
from keyturn.services.audit import AuditService
from keyturn.services.enforce import EnforceConfig, EnforceService
from keyturn.services.leases import LeaseEngineSettings, LeaseService
from keyturn.services.rotate import RotationService

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

    from keyturn.adapters.events import EventBridgeEvents
    from keyturn.adapters.probe import LambdaProbe
    from keyturn.domain.retirement import QuietPolicy
    from keyturn.services.waiting import WaitingLines

# IAM is a global service; any commercial region signs for it.
DEFAULT_REGION = "us-east-1"


class InFlight:
    """The remote calls (AWS, Vault) this process is waiting on, oldest first.

    Process-wide on purpose: the CLI's "waiting for ..." line (cli/progress.py) must see
    every client, however deep in a service it was built. It holds only names and start
    times of calls in progress, so it is empty between invocations of a warm Lambda.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[str, float]] = {}
        self._next = 0

    def start(self, name: str) -> int:
        with self._lock:
            self._next += 1
            self._calls[self._next] = (name, self._clock())
            return self._next

    def end(self, token: int | None) -> None:
        if token is None:
            return
        with self._lock:
            self._calls.pop(token, None)

    def oldest(self) -> tuple[str, float] | None:
        """The longest-waiting call's name and how many seconds it has waited."""
        with self._lock:
            if not self._calls:
                return None
            name, started = min(self._calls.values(), key=lambda call: call[1])
        return name, self._clock() - started


INFLIGHT = InFlight()
_TOKEN = "keyturn_inflight"  # noqa: S105 - a context key, not a secret


@dataclass
class _Call:
    started: float
    deadline: float
    attempts: int = 0


class Deadline:
    """A total time per AWS call, retries and back-off included (`aws.timeout_seconds`).

    botocore bounds each attempt (connect and read timeouts) but not their sum: with
    adaptive retries a silent endpoint cost max_attempts x read timeout (9 minutes were
    seen). This hook refuses to start another attempt that could end past the deadline, so
    the call fails with DeadlineExceededError (one clear line) at most `seconds` plus one
    connect timeout after it started. The call being made is kept per thread (a stack:
    refreshing credentials can make an STS call inside another call).
    """

    def __init__(self, seconds: float, read_timeout: float) -> None:
        self.seconds = seconds
        self.read_timeout = read_timeout
        self._local = threading.local()

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-call", self._before_call)
        events.register("before-send", self._before_send)
        events.register("after-call", self._after_call)
        events.register("after-call-error", self._after_call)
        return client

    def _stack(self) -> list[_Call]:
        stack: list[_Call] | None = getattr(self._local, "calls", None)
        if stack is None:
            stack = self._local.calls = []
        return stack

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        now = time.monotonic()
        self._stack().append(_Call(now, now + self.seconds))
        context[_TOKEN] = INFLIGHT.start(f"{model.service_model.endpoint_prefix}:{model.name}")

    def _after_call(self, context: dict[str, Any], **_: Any) -> None:
        INFLIGHT.end(context.pop(_TOKEN, None))
        stack = self._stack()
        if stack:
            stack.pop()

    def _before_send(self, request: Any, **_: Any) -> None:
        stack = self._stack()
        if not stack:
            return
        call = stack[-1]
        call.attempts += 1
        now = time.monotonic()
        # A retry that could still be reading past the deadline is not started.
        if call.attempts > 1 and now + self.read_timeout > call.deadline:
            raise DeadlineExceededError(
                endpoint_url=str(getattr(request, "url", "the endpoint")).split("?", 1)[0],
                waited=now - call.started,
                attempts=call.attempts - 1,
                seconds=self.seconds,
            )


@dataclass
class Aws:
    """A boto3 session with keyturn's client configuration."""

    session: boto3.session.Session
    config: Config
    endpoint_url: str | None
    deadline: Deadline | None = None
    # Paces every client made here by its service's rate (keyturn.adapters.pacing); one
    # per run and account, so a run's workers share it.
    pacer: Pacer | None = None
    _account: str | None = field(default=None, init=False, repr=False)

    def client(self, service: str, **kwargs: Any) -> Any:
        kwargs.setdefault("config", self.config)
        kwargs.setdefault("endpoint_url", self.endpoint_url)
        client = self.session.client(service, **kwargs)  # type: ignore[call-overload]
        return self.bounded(client)

    def bounded(self, client: Any) -> Any:
        """`client` with pacing, the total deadline and the in-flight tracking attached.

        The pacer first: its wait for a token comes before the deadline starts counting."""
        if self.pacer is not None:
            self.pacer.attach(client)
        return self.deadline.attach(client) if self.deadline else client

    def iam(self) -> IAMClient:
        client: IAMClient = self.client("iam")
        return client

    def sts(self) -> STSClient:
        client: STSClient = self.client("sts")
        return client

    def account_id(self) -> str:
        """The account these credentials act in (sts:GetCallerIdentity, asked once)."""
        if self._account is None:
            with translate("sts:GetCallerIdentity"):
                self._account = str(self.sts().get_caller_identity()["Account"])
        return self._account


def client_config(
    max_attempts: int, workers: int, read_timeout: float = 15.0, connect_timeout: float = 5.0
) -> Config:
    """Adaptive retries (client-side rate limiting plus jittered backoff on throttling);
    a read that times out is retried like a throttle, within the call's Deadline."""
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        max_pool_connections=max(10, workers * 2),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"keyturn/{__version__}",
    )


def build_aws(settings: Settings) -> Aws:
    """Session from the standard chain (`--profile`, env, SSO, instance role), then the
    optional `role_arn`, assumed with auto-refreshing credentials."""
    log_redaction.install()  # botocore's DEBUG logs would otherwise carry new secrets
    aws = settings.aws
    with translate("loading the AWS profile", aws.profile):
        session = boto3.session.Session(profile_name=aws.profile, region_name=aws.region)
    if not session.region_name:
        session = boto3.session.Session(profile_name=aws.profile, region_name=DEFAULT_REGION)
    config = client_config(
        aws.max_attempts, aws.workers, aws.read_timeout_seconds, aws.connect_timeout_seconds
    )
    deadline = Deadline(aws.timeout_seconds, aws.read_timeout_seconds)
    pacer = build_pacer(settings.pacing)
    if aws.role_arn:
        session = _assume_role(session, aws.role_arn, config, aws.endpoint_url, deadline, pacer)
    return Aws(
        session=session,
        config=config,
        endpoint_url=aws.endpoint_url,
        deadline=deadline,
        pacer=pacer,
    )


def build_pacer(pacing: PacingSettings) -> Pacer | None:
    """The run's pacer from `[pacing]`; SES's send rate is added once GetSendQuota told it."""
    if not pacing.enabled:
        return None
    return Pacer(
        {
            "iam": pacing.iam,
            "sts": pacing.sts,
            "secretsmanager": pacing.secretsmanager,
            LOOKUP_EVENTS: pacing.cloudtrail_lookup,
        }
    )


def _assume_role(
    source: boto3.session.Session,
    role_arn: str,
    config: Config,
    endpoint_url: str | None,
    deadline: Deadline | None = None,
    pacer: Pacer | None = None,
) -> boto3.session.Session:
    """A session whose credentials are `role_arn`'s, assumed (and refreshed) with `source`'s.

    `pacer`: the source credentials' account's (AWS counts an AssumeRole against the
    caller's STS rate), so a multi-account run's refreshes share its own account's bucket.
    """
    core = source._session
    source_credentials = core.get_credentials()

    def bounded(client: Any) -> Any:
        if pacer is not None:
            pacer.attach(client)
        return deadline.attach(client) if deadline else client

    if source_credentials is None:
        with translate("sts:AssumeRole", role_arn):
            bounded(
                source.client("sts", config=config, endpoint_url=endpoint_url)
            ).get_caller_identity()

    def client_creator(service: str, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", endpoint_url)
        kwargs.setdefault("config", config)
        return bounded(core.create_client(service, **kwargs))

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
    # botocore has no public setter for refreshable credentials on a session; this private
    # attribute is what its own credential resolver fills in.
    assumed._session._credentials = credentials  # type: ignore[attr-defined]
    return assumed


@requires("sts:AssumeRole")
def build_aws_in_account(base: Aws, account_id: str, role_name: str) -> Aws:
    """The same client setup, as `role_name` in another account (multi-account runs)."""
    partition = "aws"
    region = base.session.region_name or ""
    if region.startswith("cn-"):
        partition = "aws-cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    role_arn = f"arn:{partition}:iam::{account_id}:role/{role_name.strip('/')}"
    session = _assume_role(
        base.session, role_arn, base.config, base.endpoint_url, base.deadline, base.pacer
    )
    return Aws(
        session=session,
        config=base.config,
        endpoint_url=base.endpoint_url,
        deadline=base.deadline,
        pacer=base.pacer.fresh() if base.pacer else None,  # limits are per account
    )


def build_organizations(aws: Aws) -> OrganizationDirectory:
    client: OrganizationsClient = aws.client("organizations")
    return OrganizationDirectory(client)


def build_activity(settings: Settings, aws: Aws | None = None) -> CloudTrailActivity:
    """What a key did (`trail.*`): CloudTrail clients per region, at
    `trail.cloudtrail_endpoint_url` if set (the sandbox responder), paced per region by the
    run's pacer (AWS's limit is per account and region, not per key)."""
    trail = settings.trail
    aws = aws or build_aws(settings)
    home = aws.session.region_name or DEFAULT_REGION
    endpoint = trail.cloudtrail_endpoint_url or aws.endpoint_url
    regions: Callable[[], Regions]
    if trail.regions:
        regions = FixedRegions(trail.regions)
    else:
        ec2: EC2Client = aws.client("ec2", region_name=home)
        regions = EnabledRegions(ec2, home)  # falls back to home + us-east-1, and says so
    return CloudTrailActivity(
        lookup_clients(aws, trail.rate, endpoint),
        regions,
        max_events=trail.max_events,
        workers=trail.workers,
        budget_seconds=trail.budget_seconds,
    )


def lookup_clients(
    aws: Aws, rate: float, endpoint: str | None
) -> Callable[[str], CloudTrailClient]:
    """A paced CloudTrail client per region: the run's pacer at the lower of `rate` and
    `pacing.cloudtrail_lookup` LookupEvents a second per region. With pacing off, a pacer of
    their own for LookupEvents alone: AWS's 2/s per region is hard, and a lookup that
    outruns it loses regions to throttling."""
    pacer, own = aws.pacer, aws.pacer is None
    if pacer is None:
        pacer = Pacer({LOOKUP_EVENTS: rate})
    else:
        current = pacer.rate(LOOKUP_EVENTS)
        pacer.limit(LOOKUP_EVENTS, min(rate, current) if current else rate)

    def client_for(region: str) -> CloudTrailClient:
        client: CloudTrailClient = aws.client(
            "cloudtrail", region_name=region, endpoint_url=endpoint
        )
        return pacer.attach(client) if own else client

    return client_for


def build_account_queue(settings: Settings, aws: Aws | None = None) -> AccountQueue:
    """The fan-out queue (`fanout.queue_url`, env KEYTURN_FANOUT_QUEUE_URL)."""
    url = settings.fanout.queue_url
    if not url:
        raise ConfigError("fanout.queue_url (KEYTURN_FANOUT_QUEUE_URL) is not set")
    aws = aws or build_aws(settings)
    client: SQSClient = aws.client("sqs")
    return AccountQueue(client, url)


def build_notices(settings: Settings, aws: Aws | None = None) -> SnsNotices | None:
    """The operators' SNS channel (`notify.sns_topic_arn`), or None when none is set. The
    client signs for the topic's own region, which SNS requires."""
    arn = settings.notify.sns_topic_arn
    if not arn:
        return None
    aws = aws or build_aws(settings)
    # Through Aws.client like every other client: paced (SNS has no bucket: Publish allows
    # hundreds to thousands a second, and a run publishes one notice) and bounded.
    client = aws.client("sns", region_name=arn.split(":")[3])
    return SnsNotices(client, arn)


def notify_operators(settings: Settings, notice: RunNotice, aws: Aws | None = None) -> None:
    """The CLI's run notice: published when a topic is configured; a failure raises."""
    notices = build_notices(settings, aws)
    if notices is not None:
        notices.publish(notice)


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


def build_enforce(
    settings: Settings,
    config: EnforceConfig,
    events: EventSink,
    *,
    aws: Aws | None = None,
    clock: Clock | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    authenticator: Authenticator | None = None,
) -> EnforceService:
    """The enforcer; `config` comes from `resolve_config(settings)`, checked before this.

    `remaining_seconds` (a Lambda's remaining time) bounds how long SES pacing may wait.
    `authenticator` seals the state tags; by default `build_authenticator` with `aws`. A
    multi-account run passes one built with the central credentials, because `aws` is
    then the member role, which may not use the central account's KMS key (and has no
    key of its own): IAM goes through the member role, KMS through keyturn's own."""
    aws = aws or build_aws(settings)
    if authenticator is None:
        authenticator = build_authenticator(settings, aws)
    ses_region = settings.enforce.ses_region
    ses: SESClient = aws.client("ses", region_name=ses_region or aws.session.region_name)
    iam = aws.iam()
    return EnforceService(
        IamDirectory(iam, report_wait_seconds=settings.aws.report_wait_seconds),
        IamKeyWriter(iam),
        SesMailer(ses),
        clock or SystemClock(),
        config.rules,
        config.templates,
        config.mail,
        events,
        authenticator=authenticator,
        workers=settings.aws.workers,
        checkpoint=crash_checkpoint(),
        remaining_seconds=remaining_seconds,
        send_rate=_send_rate(aws, settings.pacing),
    )


def _send_rate(aws: Aws, pacing: PacingSettings) -> Callable[[float], object] | None:
    """Paces SendEmail at the MaxSendRate GetSendQuota reported (capped by the setting)."""
    pacer = aws.pacer
    if pacer is None:
        return None
    return lambda discovered: pacer.limit_send_rate(discovered, pacing.ses_send_rate)


# -- leases -----------------------------------------------------------------------------

# Test-only: the step (lease issue or revoke, enforce apply) after which the process kills
# itself with SIGKILL, so tests can prove that `lease tidy` / a second `enforce --apply`
# recover from a crash at every step boundary. Read at call time only.
CRASH_AFTER_ENV = "KEYTURN_TEST_CRASH_AFTER"
# Test-only: the rotation step after which the process sends itself SIGINT (Ctrl-C).
INTERRUPT_AFTER_ENV = "KEYTURN_TEST_INTERRUPT_AFTER"


def build_lease_store(settings: Settings, aws: Aws | None = None) -> LeaseStore:
    leases = settings.leases
    if leases.store == "dynamodb":
        aws = aws or build_aws(settings)
        return DynamoLeaseStore(aws.client("dynamodb"), leases.dynamodb_table)
    path = Path(leases.sqlite_path).expanduser() if leases.sqlite_path else default_path()
    return SqliteLeaseStore(path)


def lease_engine_settings(settings: Settings) -> LeaseEngineSettings:
    leases = settings.leases
    try:
        margin = parse_duration(leases.tidy_margin, "leases.tidy_margin", allow_zero=True)
    except BadInputError as exc:
        raise ConfigError(str(exc)) from None
    return LeaseEngineSettings(
        username_prefix=leases.username_prefix,
        tidy_margin=margin,
        max_revoke_attempts=leases.max_revoke_attempts,
        workers=settings.aws.workers,
    )


def config_roles(loaded: LoadedSettings) -> dict[str, Role]:
    """Roles declared in keyturn.toml, validated like `role write` (errors name the file)."""
    source = str(loaded.file) if loaded.file else "config"
    prefix = loaded.settings.leases.username_prefix
    roles: dict[str, Role] = {}
    for name, declared in loaded.settings.leases.roles.items():
        try:
            role = Role.build(name, source=source, **declared.model_dump())
            role.check_renders(prefix)
        except BadInputError as exc:
            raise ConfigError(f"{source}: [leases.roles.{name}]: {exc}") from None
        roles[name] = role
    return roles


def crash_checkpoint() -> Callable[[str], None]:
    chosen = os.environ.get(CRASH_AFTER_ENV)
    if not chosen:
        return lambda step: None

    def checkpoint(step: str) -> None:
        if step == chosen:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def build_leases(loaded: LoadedSettings, aws: Aws | None = None) -> LeaseService:
    settings = loaded.settings
    engine = lease_engine_settings(settings)
    roles = config_roles(loaded)
    aws = aws or build_aws(settings)
    checkpoint = crash_checkpoint()
    return LeaseService(
        build_lease_store(settings, aws),
        IamLeaseAdmin(aws.iam(), checkpoint=checkpoint),
        StsLeaseIssuer(aws.sts()),
        SystemClock(),
        engine,
        roles,
        checkpoint=checkpoint,
        ready=build_lease_ready(settings, aws),
    )


def build_lease_ready(settings: Settings, aws: Aws) -> Any:
    """Proves a new lease key works before it is handed out: the rotation verifier, with
    the [leases] ready_* settings (a new IAM key takes ~5-15 s to work everywhere)."""
    from keyturn.adapters.sts_verify import StsVerifier

    leases = settings.leases
    return StsVerifier(
        lambda secret: _sts_with(aws, secret),
        successes=leases.ready_successes,
        timeout=leases.ready_timeout_seconds,
        interval=leases.ready_interval_seconds,
    )


# -- rotation -----------------------------------------------------------------------------


def build_vault(settings: Settings, aws: Aws | None = None) -> Any:
    """An authenticated hvac client: token, AppRole or AWS IAM login (hvac's iam_login)."""
    import hvac

    from keyturn.adapters.vault_kv import vault_errors
    from keyturn.domain.errors import ConfigError

    vault = settings.vault
    _require_vault_addr(settings)
    verify = _vault_tls(settings)
    session = _watched_session()
    # hvac applies `verify` only to a session it makes itself: a session handed to it keeps
    # requests' default (the system trust store), which silently ignored VAULT_CACERT.
    session.verify = verify
    client = hvac.Client(
        url=vault.addr,
        namespace=vault.namespace,
        verify=verify,
        # requests' (connect, read) pair; hvac does not retry, so this bounds each call.
        timeout=(min(5.0, vault.timeout_seconds), vault.timeout_seconds),
        session=session,
    )
    if vault.auth_method == "token":
        if vault.token is None:
            raise ConfigError("no Vault token: set VAULT_TOKEN or [vault] token")
        client.token = vault.token.get_secret_value()
    elif vault.auth_method == "approle":
        if vault.approle_role_id is None or vault.approle_secret_id is None:
            raise ConfigError("AppRole login needs [vault] approle_role_id and approle_secret_id")
        with vault_errors("AppRole login", vault.approle_mount):
            client.auth.approle.login(
                role_id=vault.approle_role_id.get_secret_value(),
                secret_id=vault.approle_secret_id.get_secret_value(),
                mount_point=vault.approle_mount,
            )
    else:
        aws = aws or build_aws(settings)
        with translate("loading AWS credentials for the Vault login"):
            creds = aws.session.get_credentials()
        if creds is None:
            raise ConfigError("Vault AWS login needs AWS credentials")
        frozen = creds.get_frozen_credentials()
        with vault_errors("AWS IAM login", vault.aws_mount):
            client.auth.aws.iam_login(
                frozen.access_key,
                frozen.secret_key,
                frozen.token,
                header_value=vault.aws_header,
                role=vault.aws_role,
                region=aws.session.region_name or DEFAULT_REGION,
                mount_point=vault.aws_mount,
            )
    return client


def _require_vault_addr(settings: Settings) -> None:
    """Say what is missing, and the other way: keyturn's default store is Vault."""
    if not settings.vault.addr:
        raise ConfigError(
            "rotate stores new keys in Vault by default (rotate.store = vault, path"
            f" {settings.rotate.path}), and no Vault address is set: set VAULT_ADDR or"
            " [vault] addr, or store them in AWS Secrets Manager with --store secretsmanager"
        )


def _watched_session() -> Any:
    """A requests session whose calls show in INFLIGHT (the CLI's "waiting for ..." line)."""
    import requests

    class Watched(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
            path = str(url).split("/v1/", 1)[-1].split("?", 1)[0]
            token = INFLIGHT.start(f"Vault {method!s} {path}")
            try:
                return super().request(method, url, *args, **kw)
            finally:
                INFLIGHT.end(token)

    return Watched()


def _vault_tls(settings: Settings) -> bool | str:
    """hvac's `verify=`: the CA file when given, else the system trust store; never off
    unless asked for explicitly (VAULT_SKIP_VERIFY / [vault] skip_verify), and then said
    once on stderr instead of urllib3's warning on every request."""
    import sys
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    vault = settings.vault
    if vault.skip_verify:
        if vault.addr and vault.addr.startswith("https://"):
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
            sys.stderr.write(
                f"warning: TLS verification for Vault at {vault.addr} is OFF "
                "(VAULT_SKIP_VERIFY / [vault] skip_verify): anyone on the path can read "
                "the keys keyturn stores; use VAULT_CACERT instead\n"
            )
        return False
    if vault.cacert:
        if not Path(vault.cacert).is_file():
            raise ConfigError(f"VAULT_CACERT / [vault] cacert: {vault.cacert} is not a file")
        return vault.cacert
    return True


def rotation_checkpoint() -> Callable[[str, str], None]:
    """Test-only: SIGKILL this process right after the step named in KEYTURN_TEST_CRASH_AFTER.

    The crash-resume tests run the CLI as a subprocess and need it to die exactly at a step
    boundary, as `kill -9` would, with no cleanup and no `finally`.
    """
    wanted = os.environ.get(CRASH_AFTER_ENV, "")
    interrupt = os.environ.get(INTERRUPT_AFTER_ENV, "")

    def checkpoint(step: str, user: str) -> None:
        if wanted and step == wanted:
            os.kill(os.getpid(), signal.SIGKILL)
        if interrupt and step == interrupt:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, mid-rotation

    return checkpoint


def build_rotation_events(settings: Settings, aws: Aws) -> EventBridgeEvents | None:
    """The consumers' EventBridge bus (`rotate.event_bus`), or None when none is set. A
    bus ARN names its region, which the client must sign for."""
    from keyturn.adapters.events import EventBridgeEvents

    bus = settings.rotate.event_bus
    if not bus:
        return None
    region = bus.split(":")[3] if bus.startswith("arn:") else None
    client = aws.client("events", **({"region_name": region} if region else {}))
    return EventBridgeEvents(client, bus, account=aws.account_id(), store=settings.rotate.store)


def quiet_policy(settings: Settings) -> QuietPolicy | None:
    """`retire = "when-quiet"`'s policy from the settings; None under the timer."""
    from datetime import timedelta

    from keyturn.domain.retirement import QuietPolicy

    rotate = settings.rotate
    if rotate.retire == "timer":
        return None
    return QuietPolicy(
        quiet=timedelta(hours=rotate.quiet_hours),
        max_overlap=timedelta(days=rotate.max_overlap_days),
        on_max=rotate.on_max_overlap,
    )


def build_waiting(settings: Settings, aws: Aws | None = None) -> WaitingLines | None:
    """The audit's view of `retire = "when-quiet"` rotations still waiting; None under the
    timer (nothing waits on evidence then)."""

    from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
    from keyturn.services.waiting import WaitingLines

    rotate = settings.rotate
    if rotate.retire != "when-quiet":
        return None
    aws = aws or build_aws(settings)
    iam = aws.iam()
    policy = quiet_policy(settings)
    assert policy is not None
    journal = IamTagJournal(iam, build_authenticator(settings, aws), aws.account_id())
    return WaitingLines(IamKeys(iam), journal, SystemClock(), policy)


def build_probe(settings: Settings, aws: Aws) -> LambdaProbe | None:
    """The consumers' probe (`rotate.probe`), or None when none is set. One attempt, read
    timeout `rotate.probe_timeout_seconds`: a probe is asked once, never retried (a retry
    would double the wait, and a slow answer is a no anyway). A function ARN names its
    region, which the client must sign for."""
    from keyturn.adapters.probe import LambdaProbe

    rotate = settings.rotate
    function = rotate.probe
    if not function:
        return None
    region = function.split(":")[3] if function.startswith("arn:") else None
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=getattr(aws.config, "connect_timeout", 5),
        read_timeout=rotate.probe_timeout_seconds,
        user_agent_extra=f"keyturn/{__version__}",
    )
    client = aws.client("lambda", config=config, **({"region_name": region} if region else {}))
    return LambdaProbe(client, function, account=aws.account_id(), store=rotate.store)


def build_rotation(
    settings: Settings,
    aws: Aws | None = None,
    *,
    keep_secret: bool = False,
    checkpoint: Callable[[str, str], None] | None = None,
    store: Any = None,
    with_probe: bool = True,
) -> RotationService:
    """The rotation service for the configured store, IAM, the tag journal and STS.

    `with_probe=False`: the Secrets Manager rotation function, whose finishSecret Secrets
    Manager retries, and whose promotion a team gates with its own testSecret instead."""
    from datetime import timedelta

    from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
    from keyturn.domain.rotation import Timing

    aws = aws or build_aws(settings)
    rotate = settings.rotate
    iam = aws.iam()
    if store is None:
        store = build_store(settings, aws)
    verifier = build_verifier(settings, aws)
    timing = Timing(
        overlap=timedelta(minutes=rotate.overlap_minutes),
        grace=timedelta(days=rotate.grace_days),
        delete_old=rotate.delete_old,
        retire=quiet_policy(settings),
    )
    return RotationService(
        IamKeys(iam),
        store,
        IamTagJournal(iam, build_authenticator(settings, aws), aws.account_id()),
        verifier,
        SystemClock(),
        timing,
        # The bucket's small burst: keyturn.adapters.pacing.burst_for says why.
        limiter=_rotation_limiter(aws, rotate.rate),
        checkpoint=checkpoint or rotation_checkpoint(),
        keep_secret=keep_secret,
        events=build_rotation_events(settings, aws),
        quarantined=quarantine_checker(settings, aws),
        probe=build_probe(settings, aws) if with_probe else None,
    )


def _rotation_limiter(aws: Aws, rate: float) -> Any:
    """Rotation's IAM priorities on the run's shared IAM bucket, at the lower of `rotate.rate`
    and `pacing.iam`; with pacing off, a limiter of its own as before."""
    from keyturn.adapters.pacing import burst_for
    from keyturn.services.ratelimit import RateLimiter

    if aws.pacer is None:
        return RateLimiter(rate, burst=burst_for(rate))
    current = aws.pacer.rate("iam")
    aws.pacer.limit("iam", min(rate, current) if current else rate)
    return aws.pacer.prioritised("iam")


def build_verifier(settings: Settings, aws: Aws) -> Any:
    """Proves a new key works: consecutive sts:GetCallerIdentity successes signed with it."""
    from keyturn.adapters.sts_verify import StsVerifier

    rotate = settings.rotate
    return StsVerifier(
        lambda secret: _sts_with(aws, secret),
        successes=rotate.verify_successes,
        timeout=rotate.verify_timeout_seconds,
        interval=rotate.verify_interval_seconds,
    )


def build_enrollment(
    settings: Settings,
    aws: Aws | None = None,
    *,
    checkpoint: Callable[[str, str], None] | None = None,
    store: Any = None,
    rotation: RotationService | None = None,
) -> Any:
    """The enrollment service over the configured store. A caller that already built the
    rotation service for that store passes it (and the store), so it is not built twice."""
    from datetime import timedelta

    from keyturn.adapters.iam_enrollment import IamTagEnrollments
    from keyturn.adapters.iam_rotation import IamKeys
    from keyturn.services.enrollment import EnrollmentService

    aws = aws or build_aws(settings)
    if store is None:
        store = build_store(settings, aws)
    if rotation is None:
        rotation = build_rotation(settings, aws, checkpoint=checkpoint, store=store)
    registry = IamTagEnrollments(
        aws.iam(),
        build_authenticator(settings, aws),
        settings.rotate.store,
        store.location,
        account=aws.account_id(),
    )
    return EnrollmentService(
        rotation,
        registry,
        IamKeys(aws.iam()),
        store,
        build_verifier(settings, aws),
        SystemClock(),
        timedelta(days=settings.rotate.enroll_hold_days),
        checkpoint=checkpoint or rotation_checkpoint(),
    )


def build_authenticator(settings: Settings, aws: Aws) -> Authenticator:
    """The key that seals keyturn's own state (keyturn.domain.trust): KMS when configured,
    else the local key file. In a Lambda a local key would be a new one in every cold
    start (nothing it sealed could be resumed), so there a KMS key is required."""
    from keyturn.adapters.mac_kms import KmsAuthenticator
    from keyturn.adapters.mac_local import LocalAuthenticator, default_key_path

    trust = settings.trust
    if trust.mac_key != "local":
        return KmsAuthenticator(aws.client("kms"), trust.mac_key)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        raise ConfigError(
            "KEYTURN_TRUST_MAC_KEY must name the deployment's KMS HMAC key in a Lambda "
            "(a local journal key would not survive the container)"
        )
    path = Path(trust.local_key_path) if trust.local_key_path else default_key_path()
    return LocalAuthenticator(path)


def build_store(settings: Settings, aws: Aws) -> Any:
    """The configured SecretStore; the account id is read only if the template needs it."""
    from keyturn.adapters.secretsmanager import SecretsManagerStore
    from keyturn.adapters.vault_kv import VaultKvStore, detect_kv_version

    rotate = settings.rotate
    if rotate.store == "vault":
        _require_vault_addr(settings)  # before the account lookup below can fail instead
    account = aws.account_id() if "{account}" in rotate.path else ""
    if rotate.store == "secretsmanager":
        return SecretsManagerStore(
            aws.client("secretsmanager"),
            rotate.path,
            account=account,
            kms_key_id=rotate.kms_key_id,
            key_field=rotate.access_key_field or "AccessKeyId",
            secret_field=rotate.secret_key_field or "SecretAccessKey",
        )
    client = build_vault(settings, aws)
    mount = settings.vault.kv_mount
    version = settings.vault.kv_version or detect_kv_version(client, mount)
    return VaultKvStore(
        client,
        rotate.path,
        mount=mount,
        kv_version=version,
        account=account,
        key_field=rotate.access_key_field or "access_key",
        secret_field=rotate.secret_key_field or "secret_key",
    )


_CLIENT_LOCK = threading.Lock()


def _sts_with(aws: Aws, secret: Any) -> Any:
    """An STS client signing with the new key only; the verifier does its own retrying.

    Built from keyturn's own session (explicit credentials win over the session's), so the
    service model is loaded once, not once per user: a fresh botocore session per client
    cost ~160 ms of CPU per rotation. Client creation is serialised: botocore sessions are
    not documented as thread-safe.
    """
    with _CLIENT_LOCK:
        return aws.client(
            "sts",
            aws_access_key_id=secret.access_key_id,
            aws_secret_access_key=secret.secret_access_key,
            aws_session_token=None,
            region_name=aws.session.region_name or DEFAULT_REGION,
            endpoint_url=aws.endpoint_url,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=getattr(aws.config, "connect_timeout", 5),
                read_timeout=getattr(aws.config, "read_timeout", 15),
            ),
        )


# -- quarantine (the exposed-key response) --------------------------------------------------


def quarantine_checker(settings: Settings, aws: Aws) -> Callable[[str, str], str | None]:
    """For `rotate --rollback`: why a key may never be reactivated, or None. Two facts:
    AWS's compromised-key quarantine policy attached to the user (AWS writes it; it covers
    an exposure keyturn never handled, the old key still active in an overlap), then
    keyturn's sealed incident record of the key (a forged record is no record). The
    rotation journal's own old-key mark (keyturn.domain.rotation.rollback_refusal) is
    checked by the service first and does not depend on either."""
    from keyturn.adapters.iam_quarantine import IamIncidentTags, aws_quarantine_policies
    from keyturn.domain.quarantine import IncidentMarks, Step
    from keyturn.services.rotate import READ

    def check(user: str, key_id: str) -> str | None:
        # The rotation service sets the priority of the first of these two IAM calls (its
        # _iam_call); on the run's pacer a priority holds for one call, so the second's
        # is set here.
        attached = aws_quarantine_policies(aws.iam(), user)
        if attached:
            return (
                f"AWS attached {', '.join(attached)} to {user}: a key of the user was exposed; "
                "detach it once the exposure is remediated"
            )
        if aws.pacer is not None:
            aws.pacer.prioritised("iam").acquire(READ)
        tags = IamIncidentTags(aws.iam(), build_authenticator(settings, aws), aws.account_id())
        found = tags.read(user, key_id)
        if not isinstance(found, IncidentMarks):
            return None
        opened = found.at(Step.OPENED)
        return f"incident opened {opened:%Y-%m-%d %H:%M} UTC" if opened else "incident open"

    return check


def build_incidents(settings: Settings, aws: Aws) -> Any:
    """Where incident records go: `quarantine.record_location` (a directory or s3://)."""
    from keyturn.adapters.incident_store import LocalIncidents, S3Incidents, split_s3
    from keyturn.adapters.private_files import state_path

    location = settings.quarantine.record_location
    if location and location.startswith("s3://"):
        bucket, prefix = split_s3(location)
        return S3Incidents(aws.client("s3"), bucket, prefix)
    if not location and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        raise ConfigError(
            "KEYTURN_QUARANTINE_RECORD_LOCATION must name an s3:// prefix in a Lambda"
        )
    return LocalIncidents(Path(location) if location else state_path("incidents"))


def build_quarantine(
    settings: Settings,
    aws: Aws | None = None,
    *,
    activity: Any = None,
    checkpoint: Callable[[str, str], None] | None = None,
) -> Any:
    """The exposed-key response over IAM, the rotation store, CloudTrail, SES and SNS.

    The store and the enrollment registry are built only when the rotation store is
    configured (a Vault store without an address means "no store": keys are still
    contained, consumers are not rotated, and the outcome says so)."""
    from datetime import timedelta

    from keyturn.adapters.iam_enrollment import IamTagEnrollments
    from keyturn.adapters.iam_quarantine import IamIncidentTags, KeyOwners
    from keyturn.adapters.iam_rotation import IamKeys
    from keyturn.services.enforce import MailOptions, recipient_gate
    from keyturn.services.quarantine import QuarantineConfig, QuarantineService

    aws = aws or build_aws(settings)
    account = aws.account_id()
    authenticator = build_authenticator(settings, aws)
    iam = aws.iam()
    checkpoint = checkpoint or rotation_checkpoint()
    store = enrollments = rotation = None
    if settings.rotate.store == "secretsmanager" or settings.vault.addr:
        store = build_store(settings, aws)
        rotation = build_rotation(settings, aws, store=store, checkpoint=checkpoint)
        enrollments = IamTagEnrollments(
            iam, authenticator, settings.rotate.store, store.location, account=account
        )
    ses_region = settings.enforce.ses_region or aws.session.region_name
    mailer = SesMailer(aws.client("ses", region_name=ses_region))
    # enforce's SES rule for the owner's and the security contact's addresses
    mail = MailOptions(
        source_email=settings.notify.source_email,
        verify_sender=settings.enforce.verify_sender,
        recipient_verification=settings.enforce.recipient_verification,
        max_verifications=settings.enforce.max_verifications_per_run,
    )
    return QuarantineService(
        KeyOwners(iam, aws.sts()),
        IamKeys(iam),
        IamIncidentTags(iam, authenticator, account),
        SystemClock(),
        QuarantineConfig(
            account=account,
            activity_window=timedelta(hours=settings.trail.window_hours),
            sender=settings.notify.source_email,
            security_contact=settings.quarantine.security_contact,
            contact_tag=settings.policy.contact_tag,
            max_recipients=settings.enforce.max_recipients,
        ),
        enrollments=enrollments,
        store=store,
        rotation=rotation,
        activity=activity if activity is not None else build_activity(settings, aws),
        tags=IamDirectory(iam),
        mailer=mailer,
        notices=build_notices(settings, aws),
        incidents=build_incidents(settings, aws),
        checkpoint=checkpoint,
        recipient_gate=lambda to: recipient_gate(mailer, mail, to),
    )
