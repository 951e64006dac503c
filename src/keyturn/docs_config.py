"""Generate docs/reference/configuration.md from the settings model, so the two cannot drift.

`python -m keyturn.docs_config` writes the page; `--check` exits 1 when the page on disk
differs from what the code would write (tests/unit/test_docs_config.py runs it, and so does
`make docs`). Names, types, bounds, defaults and environment variables come from
`keyturn.config` itself; only the one-line meaning of each key is prose, written here in
`MEANINGS` (or as `Field(description=...)` on the setting, which wins). A setting without a
meaning, or a meaning for a setting that no longer exists, is an error: adding a setting
without documenting it fails the test, as a stale template does.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from keyturn.config import CONFIG_ENV, DEFAULT_FILE, ENV_ALIASES, ENV_PREFIX, SECTIONS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "configuration.md"
COMMAND = "python -m keyturn.docs_config"

# Defaults the model cannot state itself (None there means "worked out at run time").
DEFAULT_NOTES: dict[str, str] = {
    "aws.region": "none, then `us-east-1`",
    "enforce.ses_region": "the AWS region",
    "leases.sqlite_path": "`$XDG_STATE_HOME/keyturn/leases.db`",
    "rotate.workers": "10 x `rate` (4-512)",
    "rotate.access_key_field": '`"access_key"` (Vault), `"AccessKeyId"` (Secrets Manager)',
    "rotate.secret_key_field": '`"secret_key"` (Vault), `"SecretAccessKey"` (Secrets Manager)',
    "vault.kv_version": "read from the mount",
}

MEANINGS: dict[str, str] = {
    # [aws]
    "aws.profile": "AWS profile (boto3 also reads `AWS_PROFILE`)",
    "aws.region": "region for the clients (boto3 also reads `AWS_REGION`)",
    "aws.connect_timeout_seconds": "give up connecting to an AWS endpoint after this long",
    "aws.timeout_seconds": (
        "total limit per AWS call, retries included: a silent endpoint becomes one error"
    ),
    "vault.timeout_seconds": "limit per Vault request (connect and read)",
    "aws.role_arn": "role to assume first; `arn:aws…:iam::<12 digits>:role/…`",
    "aws.endpoint_url": "endpoint for every AWS call (boto3 also reads `AWS_ENDPOINT_URL`)",
    "aws.max_attempts": "attempts per call with adaptive, jittered retries",
    "aws.workers": "users worked on at once: reads, and enforcement steps (one user's steps "
    "stay in order)",
    "aws.report_wait_seconds": "how long to wait for the credential report",
    "aws.read_timeout_seconds": "how long one AWS call may wait for an answer before it is "
    "retried like a throttle",
    # [pacing]
    "pacing.enabled": "pace every AWS call by the service's rate (docs/performance.md); "
    "off leaves only botocore's adaptive retries (and LookupEvents at `trail.rate`)",
    "pacing.iam": "IAM requests per second this run may send, all workers and commands "
    "together; AWS does not publish IAM's limit (~20/s per account is common), and every "
    "other IAM client in the account shares it",
    "pacing.sts": "STS requests per second per region (new-key verification, leases, role "
    "sessions)",
    "pacing.secretsmanager": "Secrets Manager requests per second per region (its writes "
    "allow 50/s)",
    "pacing.cloudtrail_lookup": "CloudTrail LookupEvents requests per second per region (AWS: "
    "2/s per account and region, not adjustable); the lower of this and `trail.rate` applies",
    "pacing.ses_send_rate": "cap on mails per second; unset: the account's own SES "
    "`MaxSendRate` (GetSendQuota), which is always the ceiling",
    # [policy]
    "policy.notify_after_days": "age at which a key's owner is told",
    "policy.grace_days": "days from that notice to deactivation",
    "policy.delete_after_days": "days after the deactivation age at which an inactive key is "
    "due for deletion",
    "policy.unused_after_days": "flag active keys unused (or never used) this long",
    "policy.exempt_tags": 'user tags that exempt a user; value `"*"` matches any value, and '
    "values are compared case-insensitively",
    "policy.exempt_groups": "IAM groups whose members are exempt",
    "policy.contact_tag": "the user tag that holds the owner's address",
    # [notify]
    "notify.source_email": "sender address for notices (`SOURCEMAIL`); required to send",
    "notify.sns_topic_arn": (
        "an SNS topic for operators: enforce summaries, rotation results and failed runs "
        "(ids and counts only)"
    ),
    "notify.fallback_contact": "whom to tell when a user has no contact tag",
    # [enforce]
    "enforce.dry_run": "the CLI's `--apply` overrides it; the Lambda acts only with `false`",
    "enforce.notify": "send notices at all",
    "enforce.remind_every_days": "remind every N days until the deadline",
    "enforce.never_used_after_days": "enforce on keys never used after N days",
    "enforce.deactivate_without_notice": "deactivate past-deadline keys never notified",
    "enforce.verify_sender": "request SES verification of the sender when needed",
    "enforce.recipient_verification": "verify recipients: `auto` (in the SES sandbox), "
    "`always`, `never`",
    "enforce.ses_region": "region of the SES identity",
    "enforce.templates_dir": "directory with your own notice templates",
    # [vault]
    "vault.addr": "Vault / OpenBao address (`VAULT_ADDR`), for `rotate` with the Vault store",
    "vault.token": 'Vault token (`VAULT_TOKEN`) for `auth_method = "token"`; never shown',
    "vault.namespace": "Vault namespace (`VAULT_NAMESPACE`)",
    "vault.cacert": "CA file to verify Vault's TLS certificate (`VAULT_CACERT`); a missing "
    "file is a config error",
    "vault.skip_verify": "turn TLS verification off (`VAULT_SKIP_VERIFY`); said once on stderr",
    "vault.auth_method": "how keyturn logs in: `token`, `approle` or `aws` (IAM)",
    "vault.approle_role_id": "AppRole role id; never shown",
    "vault.approle_secret_id": "AppRole secret id; never shown",
    "vault.approle_mount": "mount of the AppRole auth method",
    "vault.aws_role": "Vault role for the AWS IAM login",
    "vault.aws_mount": "mount of the AWS auth method",
    "vault.aws_header": "`X-Vault-AWS-IAM-Server-ID` header value, when the AWS auth method "
    "requires one",
    "vault.kv_mount": "mount of the KV secrets engine that rotation writes to",
    "vault.kv_version": "KV version, 1 or 2",
    # [leases]
    "leases.store": "`sqlite` or `dynamodb`",
    "leases.sqlite_path": "the SQLite lease store",
    "leases.dynamodb_table": "the DynamoDB lease table",
    "leases.username_prefix": "first part of every lease user's name (max 12)",
    "leases.tidy_margin": "how old an orphaned user must be before `tidy` removes it "
    "(`15m`, `2h`, `1d`, or seconds)",
    "leases.max_revoke_attempts": "failed revokes before a lease is marked irrevocable",
    "leases.ready_successes": "successful `sts:GetCallerIdentity` calls in a row a new "
    "`iam_user` key must make before `creds` hands it out",
    "leases.ready_timeout_seconds": "how long `creds` waits for a new `iam_user` key to work "
    "before it revokes the lease and fails (`--no-wait` skips the wait)",
    "leases.ready_interval_seconds": "pause between those calls (jittered)",
    "leases.cache_margin": "cached credentials are reused until this long before they "
    "expire (`5m`, `1h`, or seconds)",
    "leases.roles": "roles declared in the file, one `[leases.roles.NAME]` table each "
    "(fields below)",
    # [leases.roles.NAME]
    "leases.roles.NAME.credential_type": "`iam_user`, `assumed_role` or `federation_token`",
    "leases.roles.NAME.policy_arns": "managed policies attached to each leased user",
    "leases.roles.NAME.policy_document": "inline policy JSON",
    "leases.roles.NAME.iam_groups": "groups each leased user is added to",
    "leases.roles.NAME.iam_tags": "tags on each leased user",
    "leases.roles.NAME.permissions_boundary_arn": "permissions boundary of each leased user",
    "leases.roles.NAME.user_path": "IAM path of the leased users",
    "leases.roles.NAME.role_arns": "roles an `assumed_role` lease may assume",
    "leases.roles.NAME.default_ttl": "lease TTL when `creds` is given none (e.g. `1h`; "
    "default 768h, STS 1h)",
    "leases.roles.NAME.max_ttl": "longest TTL, renewals included (e.g. `768h`)",
    "leases.roles.NAME.username_template": "leased user names; must start with `{prefix}` "
    "and include `{random}`",
    "leases.roles.NAME.allowed_principals": "IAM user/role ARN patterns (`*`, `?`) that may "
    "lease the role through the broker; empty: nobody (see broker.md)",
    "leases.roles.NAME.admin_principals": "ARN patterns that may also renew, revoke and list "
    "every lease of the role through the broker",
    # [broker]
    "broker.url": "the broker that `creds --broker` and `lease ... --broker` use",
    "broker.server_id": "audience bound into each signed identity proof; client default: "
    "the broker URL's origin; `broker serve` default: its own `http://HOST:PORT`",
    "broker.proof_max_age_seconds": "how far a proof's `X-Amz-Date` may be from the broker's clock",
    "broker.caller_rate_per_minute": "requests a minute each caller may make (token bucket)",
    "broker.caller_burst": "requests a caller may make at once before the rate applies",
    "broker.sts_url": "STS endpoint where the broker executes proofs; default "
    "`aws.endpoint_url`, else STS's regional endpoint",
    # [rotate]
    "rotate.store": "where new keys are stored: `vault` (KV v1/v2) or `secretsmanager`",
    "rotate.path": "Vault KV path or Secrets Manager secret name; placeholders `{account}` "
    "and `{user}`",
    "rotate.access_key_field": "field of the stored document that holds the access key id",
    "rotate.secret_key_field": "field of the stored document that holds the secret access key",
    "rotate.kms_key_id": "KMS key for new Secrets Manager secrets",
    "rotate.verify_successes": "consecutive successful `sts:GetCallerIdentity` calls that "
    "prove a new key works",
    "rotate.verify_timeout_seconds": "how long a new key has to prove it works",
    "rotate.verify_interval_seconds": "pause between verification calls",
    "rotate.overlap_minutes": "keep the old key active this long after promotion",
    "rotate.grace_days": "then delete it, this many days after the rotation started",
    "enforce.max_recipients": (
        "at most this many plain addresses from a user's `Contact` tag get a notice; the rest "
        "are reported, never mailed"
    ),
    "enforce.max_verifications_per_run": (
        "SES identity verification requests per run, one a second; the rest wait for the next run"
    ),
    "rotate.enroll_hold_days": (
        "`keyturn enroll`'s first rotation keeps the old key active this long, so consumers "
        "can be pointed at the store"
    ),
    "rotate.retire": "when the old key is deactivated after promotion: `timer` (after "
    "`overlap_minutes` / an enrollment's hold) or `when-quiet` (once IAM shows it unused)",
    "rotate.quiet_hours": "`when-quiet`: hours the old key must show no use (IAM's last-used "
    "data may lag ~4 h: a daily consumer needs 28)",
    "rotate.max_overlap_days": "`when-quiet`: longest the old key stays active after "
    "promotion while still used",
    "rotate.on_max_overlap": "`when-quiet`, at the bound: `escalate` (keep it, fail the run "
    "naming the consumer) or `deactivate` anyway",
    "rotate.probe": "Lambda function (name or ARN) keyturn invokes with the verified pending "
    'key\'s id before promotion; anything but `{"ok": true}` stops the rotation (new key '
    "deleted, old key untouched); unset: no probe",
    "rotate.probe_timeout_seconds": "how long the probe may take to answer (one attempt); a "
    "timeout stops the rotation",
    "rotate.event_bus": "EventBridge bus (name or ARN) for `Access Key Rotated` / `Access Key "
    "Retired` events (source `keyturn`) that tell consumers to reload; unset: none",
    "rotate.delete_old": "delete the old key after the grace period (else leave it inactive)",
    "rotate.workers": "users in flight at once; each waits ~10-15 s for its new key to propagate",
    "rotate.rate": "IAM requests per second for rotation, all workers together (journal tag "
    "writes included); the lower of this and `pacing.iam` applies",
    # [fanout]
    "fanout.role_name": "role assumed in each account with `--accounts` / `--org` and by the "
    "fan-out worker",
    "fanout.task": "what the fan-out worker runs in each account: `enforce` or `audit`",
    "fanout.queue_url": "the fan-out SQS queue (set by the SAM template)",
    "fanout.workers": "accounts worked on at once from the CLI",
    "trust.mac_key": (
        "what seals keyturn's journal and enrollment tags: `local` (a key file, CLI only) or "
        "the deployment's KMS HMAC key (id, ARN or alias; the template's JournalKeyArn output)"
    ),
    "trust.local_key_path": "where the `local` key lives (default: keyturn's state directory)",
    # [trail]
    "trail.window_hours": "how far back before the incident an exposed key's CloudTrail "
    "activity is read (event history keeps 90 days)",
    "trail.max_events": "stop reading an exposed key's events after this many (the summary "
    "then says it is truncated); 10,000 take about 100 s in one region",
    "trail.workers": "regions searched at once",
    "trail.rate": "LookupEvents requests per second per region (AWS allows 2; lower it when "
    "other tools share the budget); the lower of this and `pacing.cloudtrail_lookup` applies",
    "trail.budget_seconds": "stop reading events after this long (the summary then says it is "
    "truncated)",
    "trail.regions": "regions to search; empty: every region enabled for the account "
    "(`ec2:DescribeRegions`)",
    "trail.cloudtrail_endpoint_url": "endpoint for CloudTrail only (the sandbox responder in "
    "tests and the demo); unset: `aws.endpoint_url`",
    # [quarantine]
    "quarantine.security_contact": "address told of every exposed key, beside the key's owner "
    "(its Contact tag), by SES from `notify.source_email`",
    "quarantine.record_location": "where incident records go: a directory or `s3://BUCKET/PREFIX`"
    " (default: keyturn's state directory, `incidents/`; the Lambda: the template's bucket)",
}


class MissingMeaningError(Exception):
    """A setting with no meaning, or a meaning for no setting: the page would lie."""


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _type_name(annotation: Any) -> str:
    inner, _ = _unwrap_optional(annotation)
    origin = get_origin(inner)
    if origin is Literal:
        return "one of " + ", ".join(f'`"{v}"`' for v in get_args(inner))
    if origin is list:
        return "list of strings"
    if origin is dict:
        value = get_args(inner)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return "tables"
        return "table of strings"
    if inner is SecretStr:
        return "string (secret)"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(inner, str(inner))


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(info: FieldInfo) -> str:
    """What the model will accept: a range, a bound, a length (`1-20`, `> 0, ≤ 900`)."""
    low = high = ""
    length = ""
    for item in info.metadata:
        if isinstance(item, Ge):
            low = _number(item.ge)
        elif isinstance(item, Gt):
            low = f"> {_number(item.gt)}"
        elif isinstance(item, Le):
            high = _number(item.le)
        elif isinstance(item, Lt):
            high = f"< {_number(item.lt)}"
        elif isinstance(item, MaxLen):
            length = f"≤ {item.max_length} characters"
        elif isinstance(item, MinLen) and item.min_length > 1:
            length = f"≥ {item.min_length} characters"
    if low and high and not low.startswith(">") and not high.startswith("<"):
        return f"{low}–{high}"
    parts = [
        low if low.startswith(">") else (f"≥ {low}" if low else ""),
        high if high.startswith("<") else (f"≤ {high}" if high else ""),
        length,
    ]
    return ", ".join(part for part in parts if part)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    if value == {}:
        return "`{}`"
    if value == []:
        return "`[]`"
    return f"`{value}`"


def _default(key: str, info: FieldInfo) -> str:
    if key in DEFAULT_NOTES:
        return DEFAULT_NOTES[key]
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    return "none" if value is None else _toml(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _meaning(key: str, info: FieldInfo, used: set[str]) -> str:
    if info.description:
        return info.description
    if key not in MEANINGS:
        raise MissingMeaningError(
            f"setting {key} has no meaning: add it to MEANINGS in keyturn/docs_config.py "
            f"(or give the field a description), then run `{COMMAND}`"
        )
    used.add(key)
    return MEANINGS[key]


def _rows(prefix: str, model: type[BaseModel], used: set[str]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        key = f"{prefix}.{name}"
        kind = _type_name(info.annotation)
        bounds = _bounds(info)
        if bounds:
            kind += f", {bounds}"
        cells = (f"`{key}`", kind, _default(key, info), _meaning(key, info, used))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _nested(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """Fields that hold a table of sub-tables (`leases.roles.NAME`)."""
    found = []
    for name, info in model.model_fields.items():
        inner, _ = _unwrap_optional(info.annotation)
        if get_origin(inner) is dict:
            value = get_args(inner)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                found.append((name, value))
    return found


def _intro(model: type[BaseModel]) -> list[str]:
    doc = model.__dict__.get("__doc__")
    if not doc:
        return []
    return [inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " "), ""]


def render() -> str:
    """The whole page, as `python -m keyturn.docs_config` writes it."""
    used: set[str] = set()
    lines = [
        f"<!-- GENERATED by `{COMMAND}` from keyturn.config: do not edit. -->",
        "",
        "# Configuration reference",
        "",
        "Every key keyturn reads, generated from the settings model, so this page and the "
        "code cannot disagree (a test fails when they do). How the layers combine is in "
        "[Configuration](../configuration.md).",
        "",
        f"- **File**: `{DEFAULT_FILE}` in the current directory, or `--config` / `-c` / "
        f"`{CONFIG_ENV}`; one `[section]` table per heading below.",
        f"- **Environment**: `{ENV_PREFIX}<SECTION>_<KEY>` for any key below, e.g. "
        f"`{ENV_PREFIX}POLICY_GRACE_DAYS=10`; a list as `a,b`, a table as `k=v,k2=v2`.",
        "- Unknown sections, keys and `KEYTURN_…` variables are errors.",
        "",
        "## Names other tools use",
        "",
        f"If both are set, the `{ENV_PREFIX}…` name wins over the other name.",
        "",
        "| variable | sets |",
        "|---|---|",
    ]
    for name, (section, key) in ENV_ALIASES.items():
        lines.append(f"| `{name}` | `{section}.{key}` |")
    for section, model in SECTIONS.items():
        lines += ["", f"## [{section}]", ""]
        lines += _intro(model)
        lines += _rows(section, model, used)
        for name, sub in _nested(model):
            lines += ["", f"### [{section}.{name}.NAME]", ""]
            lines += _intro(sub)
            lines += _rows(f"{section}.{name}.NAME", sub, used)
    stale = sorted(set(MEANINGS) - used)
    if stale:
        raise MissingMeaningError(
            f"MEANINGS in keyturn/docs_config.py describes settings that no longer exist: "
            f"{', '.join(stale)}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the page is not what the code writes"
    )
    args = parser.parse_args(argv)
    try:
        text = render()
    except MissingMeaningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"error: {PAGE.relative_to(ROOT)} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
