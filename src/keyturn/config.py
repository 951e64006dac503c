"""One typed Settings object: file < environment < flags, validated before anything runs.

Every value remembers where it came from, so an error names the file and key, the
environment variable or the flag, and `keyturn config show` can say why a value is what it
is. Unknown keys are errors: a typo in a safety setting must not silently fall back to a
default.

A config file is state another principal may be able to write (DESIGN.md, "who can write
what"): whoever can write the working directory can drop a `keyturn.toml` there, and it is
read without being asked for. So, as ssh does with its config and keys, a file that is not
owned by the current user (or root) or that its group or others may write is refused with
one line, whichever way it was found (`-c`, KEYTURN_CONFIG, or the working directory). A
file picked up implicitly from the working directory that sets security-relevant settings
(`SECURITY_SETTINGS`: TLS verification, where Vault is and which CA it is trusted with,
store paths, KMS keys, endpoints, roles, queues, mail senders and templates) has those
settings named on stderr, so a run steered by a file nobody asked for is visible.
"""

from __future__ import annotations

import math
import os
import re
import string
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from keyturn.config_trust import check_file_trust
from keyturn.domain.errors import ConfigError
from keyturn.domain.policy import PolicySettings

DEFAULT_FILE = "keyturn.toml"
CONFIG_ENV = "KEYTURN_CONFIG"
ENV_PREFIX = "KEYTURN_"
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(_Section):
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+")
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    max_attempts: int = Field(default=8, ge=1, le=20)
    workers: int = Field(default=8, ge=1, le=64)
    report_wait_seconds: float = Field(default=120.0, gt=0, le=900)
    # Per attempt: how long a connection may take to open, and a response to go quiet.
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    read_timeout_seconds: float = Field(default=15.0, gt=0, le=900)
    # Per call, retries and their back-off included: an endpoint that never answers is one
    # error after about this long (wiring.py's deadline), not max_attempts x read timeout.
    timeout_seconds: float = Field(default=45.0, gt=0, le=3600)


class PacingSettings(_Section):
    """Requests a second this run may send per AWS service (keyturn.adapters.pacing cites
    AWS's limits). Shared by all of a run's workers, per account."""

    enabled: bool = True
    iam: float = Field(default=10.0, gt=0, le=1000)
    sts: float = Field(default=50.0, gt=0, le=10000)
    secretsmanager: float = Field(default=40.0, gt=0, le=10000)
    cloudtrail_lookup: float = Field(default=2.0, gt=0, le=100)
    # None: SES's own MaxSendRate (GetSendQuota); a number caps it.
    ses_send_rate: float | None = Field(default=None, gt=0, le=1000)


class PolicyConfig(_Section):
    notify_after_days: int = Field(default=30, ge=1, le=3650)
    grace_days: int = Field(default=7, ge=0, le=3650)
    delete_after_days: int | None = Field(default=None, ge=0, le=3650)
    unused_after_days: int | None = Field(default=None, ge=1, le=3650)
    exempt_tags: dict[str, str] = Field(default_factory=dict)
    exempt_groups: list[str] = Field(default_factory=list)
    contact_tag: str = Field(default="Contact", min_length=1, max_length=128)

    def to_domain(self) -> PolicySettings:
        return PolicySettings(
            notify_after_days=self.notify_after_days,
            grace_days=self.grace_days,
            delete_after_days=self.delete_after_days,
            unused_after_days=self.unused_after_days,
            exempt_tags=dict(self.exempt_tags),
            exempt_groups=frozenset(self.exempt_groups),
        )


class NotifySettings(_Section):
    source_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    fallback_contact: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # Operators' channel beside SES: run summaries, rotation results and failed runs go to
    # this (standard) SNS topic; owners are still mailed through SES.
    sns_topic_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
    )


class EnforceSettings(_Section):
    """`keyturn enforce` and its Lambda; thresholds live in [policy], addresses in [notify]."""

    dry_run: bool = True
    notify: bool = True
    remind_every_days: int | None = Field(default=None, ge=1, le=3650)
    never_used_after_days: int | None = Field(default=None, ge=1, le=3650)
    deactivate_without_notice: bool = False
    verify_sender: bool = True
    recipient_verification: Literal["auto", "always", "never"] = "auto"
    ses_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    templates_dir: str | None = None
    # At most this many Contact addresses get a key's notice (the tag is its owner's claim).
    max_recipients: int = Field(default=2, ge=1, le=50)
    # SES verification requests a run makes, 1 a second; the rest wait for the next run.
    max_verifications_per_run: int = Field(default=30, ge=0, le=600)


class VaultSettings(_Section):
    addr: str | None = Field(default=None, pattern=r"^https?://")
    token: SecretStr | None = None
    namespace: str | None = None
    cacert: str | None = None
    # TLS verification is on unless this says otherwise (VAULT_SKIP_VERIFY, as Vault's CLI).
    skip_verify: bool = False
    # How keyturn logs in: a token (VAULT_TOKEN), AppRole, or AWS IAM (hvac's iam_login).
    auth_method: Literal["token", "approle", "aws"] = "token"
    approle_role_id: SecretStr | None = None
    approle_secret_id: SecretStr | None = None
    approle_mount: str = Field(default="approle", min_length=1)
    aws_role: str | None = None
    aws_mount: str = Field(default="aws", min_length=1)
    aws_header: str | None = None
    kv_mount: str = Field(default="secret", min_length=1)
    kv_version: int | None = Field(default=None, ge=1, le=2)  # None: read from the mount
    # Per request (connect, then read); hvac does not retry, so this bounds each call.
    timeout_seconds: float = Field(default=30.0, gt=0, le=900)


# For the default rotate.workers (RotateSettings.worker_count): how long a worker holds one
# user, and how many IAM calls start a user (ListAccessKeys, TagUser intent, CreateAccessKey).
ROTATE_HOLD_SECONDS = 30.0
ROTATE_START_CALLS = 3
MAX_ROTATE_WORKERS = 512


class RotateSettings(_Section):
    """`keyturn rotate` and the rotation Lambdas."""

    store: Literal["vault", "secretsmanager"] = "vault"
    # Vault KV path or Secrets Manager secret name; placeholders {account} and {user}.
    path: str = Field(default="aws/{account}/{user}", min_length=1)
    access_key_field: str | None = None  # vault: access_key; secretsmanager: AccessKeyId
    secret_key_field: str | None = None  # vault: secret_key; secretsmanager: SecretAccessKey
    kms_key_id: str | None = None
    verify_successes: int = Field(default=5, ge=1, le=50)
    verify_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    verify_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    overlap_minutes: float = Field(default=0, ge=0, le=60 * 24 * 30)
    grace_days: float = Field(default=7, ge=0, le=3650)
    delete_old: bool = True
    # An enrollment's first rotation keeps the old key active this long, so its consumers
    # can be pointed at the store before it goes (`keyturn enroll`).
    enroll_hold_days: float = Field(default=7, ge=0, le=365)
    # Users in flight at once; default (None): 10 x `rate`, see worker_count().
    workers: int | None = Field(default=None, ge=1, le=MAX_ROTATE_WORKERS)
    rate: float = Field(default=10.0, gt=0, le=1000)  # IAM requests per second, all workers
    # Retire the old key on the timer (overlap/hold, the default) or only once IAM shows it
    # unused for `quiet_hours` (keyturn.domain.retirement, which cites the 28 h default),
    # at most `max_overlap_days` after promotion; then `on_max_overlap` decides.
    retire: Literal["timer", "when-quiet"] = "timer"
    quiet_hours: float = Field(default=28, gt=0, le=24 * 90)
    max_overlap_days: float = Field(default=7, gt=0, le=365)
    on_max_overlap: Literal["escalate", "deactivate"] = "escalate"
    # EventBridge bus (name or ARN) for `Access Key Rotated` / `Access Key Retired`
    # events (keyturn.adapters.events); None: no events.
    event_bus: str | None = Field(
        default=None, min_length=1, max_length=1600, pattern=r"^(arn:[\w:/+=,.@-]+|[\w/.+=,@-]+)$"
    )

    # A Lambda function (name or ARN) asked about the verified pending key before promotion
    # (keyturn.adapters.probe, which checks the name); None: no probe.
    probe: str | None = Field(default=None, min_length=1, max_length=256)
    probe_timeout_seconds: float = Field(default=30.0, gt=0, le=900)

    @field_validator("probe")
    @classmethod
    def _probe_function(cls, value: str | None) -> str | None:
        from keyturn.domain.model import LAMBDA_FUNCTION

        if value is not None and not LAMBDA_FUNCTION.fullmatch(value):
            raise ValueError(
                "must be a Lambda function name, ACCOUNT:function:NAME or a function ARN "
                "(optionally :VERSION or :ALIAS)"
            )
        return value

    @model_validator(mode="after")
    def _bound_after_quiet(self) -> RotateSettings:
        if self.retire == "when-quiet" and self.max_overlap_days * 24 < self.quiet_hours:
            raise ValueError(
                f"max_overlap_days ({self.max_overlap_days:g}) must be at least quiet_hours "
                f"({self.quiet_hours:g} h): a key unused since promotion could never be quiet "
                "before the bound"
            )
        return self

    def worker_count(self) -> int:
        """`workers`, or enough of them to keep `rate` busy while keys propagate.

        A worker holds its user for the whole propagation and verification of the new key
        (5-15 s in the field, plus N successes about a second apart), and then, since the
        rate limiter serves retirements last (services/rotate.py), while other users start:
        up to ~30 s in all, for only 3 IAM calls to start the next user. The limiter bounds
        the request rate whatever the worker count, so workers only bound how many users
        wait at once: to keep `rate` requests/s flowing, rate / 3 users must start each
        second, and 30 s worth of them be in flight: 10 x rate. Measured (bench_rotate, 200
        users at 20 IAM calls/s): 100 workers took 1.41x the model's bound, 200 took 1.14x;
        the old fixed 4 would run at a fraction of `rate`.
        """
        if self.workers is not None:
            return self.workers
        needed = self.rate * ROTATE_HOLD_SECONDS / ROTATE_START_CALLS
        return max(4, min(MAX_ROTATE_WORKERS, math.ceil(needed)))

    @field_validator("path")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc})") from None
        unknown = names - {"account", "user"}
        if unknown:
            first = sorted(unknown)[0]
            raise ValueError(f"unknown placeholder {{{first}}}; use {{account}}, {{user}}")
        return value


class TrustSettings(_Section):
    """Which key seals the state keyturn acts on (rotation journal, enrollment records).

    See keyturn.domain.trust: a record in an IAM tag is believed only when its seal
    verifies. `local` (the CLI default, no infrastructure) keeps a 256-bit key in keyturn's
    state directory; anything else names a KMS HMAC key (id, ARN or `alias/...`), which the
    deployment's Lambdas and the operators' CLI must share.
    """

    mac_key: str = Field(default="local", pattern=r"^(local|[A-Za-z0-9:/_+=.@-]{1,2048})$")
    # Where the local key lives; default: $XDG_STATE_HOME/keyturn/journal.key.
    local_key_path: str | None = None


class LeaseRoleConfig(_Section):
    """A role declared in keyturn.toml as [leases.roles.NAME]; same fields as `role write`."""

    credential_type: str
    policy_arns: list[str] = Field(default_factory=list)
    policy_document: str | None = None
    iam_groups: list[str] = Field(default_factory=list)
    iam_tags: dict[str, str] = Field(default_factory=dict)
    permissions_boundary_arn: str | None = None
    user_path: str | None = None
    role_arns: list[str] = Field(default_factory=list)
    default_ttl: str | None = None
    max_ttl: str | None = None
    username_template: str | None = None
    allowed_principals: list[str] = Field(default_factory=list)
    admin_principals: list[str] = Field(default_factory=list)


class BrokerSettings(_Section):
    """The lease broker (docs/broker.md): the server's and the client's side."""

    # Client: where `creds --broker` / `lease ... --broker` send requests.
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    # Both sides: the audience bound into each signed proof. A client sends the broker's
    # URL origin when unset; `broker serve` answers to its own http://HOST:PORT when unset.
    server_id: str | None = Field(default=None, pattern=r"^[\x21-\x7E]{1,256}$")
    # Server: how old a proof's X-Amz-Date may be (either direction), in seconds.
    proof_max_age_seconds: int = Field(default=300, ge=10, le=900)
    # Server: per-caller token bucket (requests per minute, burst).
    caller_rate_per_minute: float = Field(default=30.0, gt=0, le=6000)
    caller_burst: int = Field(default=10, ge=1, le=1000)
    # Server: where the broker executes the callers' signed GetCallerIdentity; default
    # aws.endpoint_url, else STS's regional endpoint for the broker's region.
    sts_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+/?$")


class LeasesSettings(_Section):
    store: Literal["sqlite", "dynamodb"] = "sqlite"
    sqlite_path: str | None = None  # default: $XDG_STATE_HOME/keyturn/leases.db
    dynamodb_table: str = Field(default="keyturn-leases", pattern=r"^[A-Za-z0-9_.-]{3,255}$")
    username_prefix: str = Field(default="keyturn", pattern=r"^[\w+=,.@-]{1,12}$")
    tidy_margin: str = Field(default="15m", pattern=r"^(\d+|(\d+[dhms])+)$")
    max_revoke_attempts: int = Field(default=5, ge=1, le=100)
    roles: dict[str, LeaseRoleConfig] = Field(default_factory=dict)
    # An iam_user key is handed out only after this many sts:GetCallerIdentity successes in
    # a row (the rotation verifier's rule), within ready_timeout_seconds; else it is revoked.
    ready_successes: int = Field(default=5, ge=1, le=50)
    ready_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    ready_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    # Cached credentials are reused until this long before they expire (`creds --format
    # process`, `exec`); 15m: botocore refreshes 15 minutes before expiry (lease_cache.py).
    cache_margin: str = Field(default="15m", pattern=r"^(\d+|(\d+[dhms])+)$")


class FanoutSettings(_Section):
    """Runs over many accounts: the role assumed in each, and the Lambda fan-out's queue."""

    role_name: str = Field(default="keyturn-member", pattern=r"^[\w+=,.@/-]{1,64}$")
    task: Literal["enforce", "audit"] = "enforce"
    queue_url: str | None = Field(default=None, pattern=r"^https?://")
    workers: int = Field(default=4, ge=1, le=64)


class TrailSettings(_Section):
    """What an exposed key did: the CloudTrail `LookupEvents` summary (adapters/cloudtrail.py).

    LookupEvents allows 2 requests a second per account and region and 50 events a page, so
    `max_events` bounds the time too: 10,000 events in one region is about 100 s.
    """

    window_hours: float = Field(default=24.0, gt=0, le=90 * 24)  # event history: 90 days
    max_events: int = Field(default=10_000, ge=1, le=100_000)
    workers: int = Field(default=8, ge=1, le=32)
    rate: float = Field(default=2.0, gt=0, le=2.0)  # LookupEvents requests/s per region
    budget_seconds: float = Field(default=300.0, gt=0, le=900)
    regions: list[str] = Field(default_factory=list)  # empty: ec2:DescribeRegions
    cloudtrail_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not REGION_NAME.fullmatch(name):
                raise ValueError(f"{name[:40]!r} is not a region name (like eu-west-1)")
        return value


class QuarantineSettings(_Section):
    """The exposed-key response (`keyturn quarantine`, the AWS Health Lambda)."""

    # Told beside the key's owner (its Contact tag), by SES from notify.source_email.
    security_contact: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # A directory, or s3://BUCKET/PREFIX; default: $XDG_STATE_HOME/keyturn/incidents.
    record_location: str | None = Field(default=None, min_length=1, max_length=1024)
    # How far back CloudTrail is searched is `trail.window_hours`, with the lookup's other
    # bounds: one section says how the summary is read.


class Settings(_Section):
    aws: AwsSettings = Field(default_factory=AwsSettings)
    pacing: PacingSettings = Field(default_factory=PacingSettings)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    enforce: EnforceSettings = Field(default_factory=EnforceSettings)
    vault: VaultSettings = Field(default_factory=VaultSettings)
    leases: LeasesSettings = Field(default_factory=LeasesSettings)
    rotate: RotateSettings = Field(default_factory=RotateSettings)
    fanout: FanoutSettings = Field(default_factory=FanoutSettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
    trail: TrailSettings = Field(default_factory=TrailSettings)
    quarantine: QuarantineSettings = Field(default_factory=QuarantineSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
}

# Names other tools (seed 002, Vault) already use; keyturn honours them as they are.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "NOTIFYKEYAGE": ("policy", "notify_after_days"),
    "SOURCEMAIL": ("notify", "source_email"),
    "VAULT_ADDR": ("vault", "addr"),
    "VAULT_TOKEN": ("vault", "token"),
    "VAULT_NAMESPACE": ("vault", "namespace"),
    "VAULT_CACERT": ("vault", "cacert"),
    "VAULT_SKIP_VERIFY": ("vault", "skip_verify"),
}


# Settings that decide where keys go, whom keyturn trusts or whom it tells: a file that
# keyturn picked up on its own (the working directory's keyturn.toml) and that sets any of
# these has them named on stderr.
SECURITY_SETTINGS = frozenset(
    {
        "aws.endpoint_url",
        "aws.role_arn",
        "aws.profile",
        "vault.addr",
        "vault.cacert",
        "vault.skip_verify",
        "vault.namespace",
        "vault.token",
        "vault.auth_method",
        "vault.aws_header",
        "vault.aws_role",
        "vault.kv_mount",
        "rotate.store",
        "rotate.path",
        "rotate.kms_key_id",
        "rotate.enroll_hold_days",
        "trust.mac_key",
        "trust.local_key_path",
        "rotate.access_key_field",
        "rotate.secret_key_field",
        "leases.store",
        "leases.sqlite_path",
        "leases.dynamodb_table",
        "leases.roles",
        "broker.url",
        "broker.server_id",
        "broker.sts_url",
        "fanout.role_name",
        "fanout.queue_url",
        "enforce.templates_dir",
        "enforce.dry_run",
        "notify.source_email",
        "notify.fallback_contact",
        "notify.sns_topic_arn",
        "trail.cloudtrail_endpoint_url",
        "quarantine.security_contact",
        "quarantine.record_location",
    }
)


@dataclass
class LoadedSettings:
    """The validated settings and where each explicitly set value came from."""

    settings: Settings
    origins: dict[str, str] = field(default_factory=dict)
    file: Path | None = None

    def origin(self, dotted: str) -> str:
        return self.origins.get(dotted, "default")


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Merge file < env < flags (dotted keys such as ``"aws.region"``) and validate once.

    `flag_names` maps a dotted key to the flag the user typed (``"--grace"``), so an error
    names what they wrote rather than the setting behind it.
    """
    env = os.environ if environ is None else environ
    file, implicit = _config_path(path, env)
    layers: list[tuple[dict[str, dict[str, Any]], dict[str, str]]] = []
    if file is not None:
        check_file_trust(file)
        layer = _file_layer(file)
        if implicit:
            _name_security_settings(file, layer[1])
        layers.append(layer)
    layers.append(_env_layer(env))
    layers.append(_flag_layer(flags or {}, flag_names or {}))

    merged: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for values, sources in layers:
        for section, items in values.items():
            merged.setdefault(section, {}).update(items)
        origins.update(sources)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, file)) from None
    return LoadedSettings(settings=settings, origins=origins, file=file)


def _config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The config file and whether it was picked up implicitly (the working directory's)."""
    chosen = path or env.get(CONFIG_ENV)
    if chosen:
        candidate = Path(chosen)
        if candidate.is_dir():
            raise ConfigError(
                f"config file {candidate} is a directory; give the keyturn.toml inside it"
            )
        if not candidate.is_file():
            raise ConfigError(f"config file {candidate} does not exist")
        return candidate, False
    default = Path(DEFAULT_FILE)
    return (default, True) if default.is_file() else (None, False)


def _name_security_settings(file: Path, origins: Mapping[str, str]) -> None:
    """One stderr line naming the security-relevant settings an implicit file sets."""
    found = sorted(dotted for dotted in origins if dotted in SECURITY_SETTINGS)
    if found:
        sys.stderr.write(
            f"warning: {file} (read from the current directory, not named with -c or"
            f" {CONFIG_ENV}) sets security-relevant settings: {', '.join(found)}\n"
        )


def _file_layer(file: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for section, items in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{file}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(items, dict):
            raise ConfigError(f"{file}: {section} should be a [{section}] table")
        values[section] = dict(items)
        origins.update({f"{section}.{key}": str(file) for key in items})
    return values, origins


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}

    def put(section: str, key: str, raw: str, name: str) -> None:
        values.setdefault(section, {})[key] = _from_env(section, key, raw)
        origins[f"{section}.{key}"] = f"environment {name}"

    for name, (section, key) in ENV_ALIASES.items():
        if env.get(name):
            put(section, key, env[name], name)
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        found = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if found is None:
            continue
        key = rest[len(found) + 1 :]
        if key not in SECTIONS[found].model_fields:
            known = ", ".join(
                f"{ENV_PREFIX}{found.upper()}_{k.upper()}" for k in SECTIONS[found].model_fields
            )
            raise ConfigError(f"unknown environment variable {name} (known: {known})")
        put(found, key, raw, name)
    return values, origins


def _from_env(section: str, key: str, raw: str) -> Any:
    """Lists and tables arrive as text: `a,b` and `k=v,k2=v2`."""
    annotation = SECTIONS[section].model_fields[key].annotation
    text = raw.strip()
    if annotation == list[str]:
        return [item.strip() for item in text.split(",") if item.strip()]
    if annotation == dict[str, str]:
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            tag, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"environment {ENV_PREFIX}{section.upper()}_{key.upper()}: expected "
                    f"KEY=VALUE pairs separated by commas, got {item!r}"
                )
            pairs[tag.strip()] = value.strip()
        return pairs
    return text


def _flag_layer(
    flags: Mapping[str, Any], names: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        values.setdefault(section, {})[key] = value
        origins[dotted] = "flag " + names.get(dotted, f"--{key.replace('_', '-')}")
    return values, origins


# Values never echoed back, not even in an error about their type (invariant 5).
SECRET_KEYS = frozenset({"vault.token", "vault.approle_role_id", "vault.approle_secret_id"})

EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "dict_type": "expected a table of strings",
    "list_type": "expected a list of strings",
}


def _describe(exc: ValidationError, origins: dict[str, str], file: Path | None) -> str:
    """One line per problem, each naming where the bad value came from."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        dotted = ".".join(loc[:2])
        where = origins.get(dotted) or (str(file) if file else "config")
        if error["type"] == "extra_forbidden":
            section = loc[0]
            if len(loc) == 1:
                lines.append(f"{where}: unknown section [{section}]")
                continue
            known = ", ".join(SECTIONS[section].model_fields) if section in SECTIONS else ""
            lines.append(f"{where}: unknown key {dotted} (known in [{section}]: {known})")
            continue
        expected = EXPECTED.get(error["type"], error["msg"][:1].lower() + error["msg"][1:])
        shown = "***" if dotted in SECRET_KEYS else repr(error.get("input"))
        lines.append(f"{where}: {dotted}: {expected}, got {shown}")
    return "invalid configuration: " + "; ".join(lines)
