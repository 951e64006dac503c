"""Scheduled rotation Lambda: resume what is half-done, delete old keys past grace, rotate
the enrolled users the policy says are due.

Event (all optional): `{"users": ["alice"], "due": true}`, at the top level or as the
`detail` of an EventBridge scheduled event. Configuration comes from the environment
(KEYTURN_ROTATE_*, KEYTURN_VAULT_*, VAULT_*, KEYTURN_TRUST_MAC_KEY), validated before any
write. Returns key ids only; raises if any user failed so the invocation is marked failed.
When `notify.sns_topic_arn` is set, the run's results (user names, states, key ids, counts)
or its failure (the error's kind) are published to the operators' topic.

Who can write the event: whoever may invoke this function, a wider set than those who may
configure it, so the event is a claim that may only narrow a run: name users (each still
rotated only if enrolled, exactly like a due user: an event cannot enroll anyone), or skip
the due users (`due: false`). Anything it cannot ask for is refused with one line and an
`event refused` log record before anything is read or written: unknown fields (a misspelt
`dry_run` must not run for real), and `dry_run` itself, which this function does not offer
(a caller who asked for a dry run must not get a real rotation; `keyturn rotate --dry-run`
is the dry run). The journal and enrollment tags: anyone with iam:TagUser (believed only
when sealed with the deployment's KMS key, keyturn.domain.trust). Users that are due but not
enrolled, and state that failed its seal, are reported in the result, never acted on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from keyturn.adapters.enrollment_generation import KmsKeyTagGenerations
from keyturn.adapters.events import EventBridgeEvents
from keyturn.adapters.iam import IamDirectory
from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.iam_quarantine import IamIncidentTags
from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.probe import LambdaProbe
from keyturn.adapters.secretsmanager import SecretsManagerStore
from keyturn.adapters.sns import Outcome as NoticeOutcome
from keyturn.adapters.sns import RunNotice, SnsNotices, UserResult
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.domain.model import IAM_USER_NAME

# What this function calls with Secrets Manager as the store (Vault KV needs no AWS
# permission: its writes go to Vault, and AWS-auth login signs sts:GetCallerIdentity, which
# needs none; so does verification). Their @requires are the function's IAM policy
# (keyturn.deploy.functions), proven enough and minimal on moto.
CALLS = (
    IamKeys.list_keys,
    IamKeys.create_key,
    IamKeys.set_active,
    IamKeys.delete_key,
    IamKeys.last_used,
    EventBridgeEvents.publish,  # rotate.event_bus: consumers told
    LambdaProbe.check,  # rotate.probe: the consumers' check before promotion,
    IamIncidentTags.read,  # not asked when the old key is quarantined as exposed
    IamTagJournal.read,
    IamTagJournal.write,
    IamTagJournal.users_with_records,
    IamTagEnrollments.tagged,
    KmsKeyTagGenerations.load,  # the account's enrollment generation, once per run
    KmsAuthenticator.seal,
    KmsAuthenticator.verify,
    SecretsManagerStore.describe,
    SecretsManagerStore.key_id,
    SecretsManagerStore.read_pending,
    SecretsManagerStore.put_pending,
    SecretsManagerStore._create_placeholder,
    SecretsManagerStore.promote,
    # choosing the due users: the audit over the credential report
    IamDirectory.credential_report,
    IamDirectory.group_members,
    # the operators' notice (notify.sns_topic_arn)
    SnsNotices.publish,
)
EVENT_FIELDS = frozenset({"users", "due"})
# EventBridge's envelope around a scheduled event; the request is its `detail`.
ENVELOPE = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources"}
)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    from aws_lambda_powertools import Logger

    from keyturn.config import load_settings
    from keyturn.wiring import build_aws, build_notices

    logger = Logger(service="keyturn-rotate")
    request_id = getattr(context, "aws_request_id", None)
    notices: SnsNotices | None = None
    try:
        settings = load_settings().settings
        aws = build_aws(settings)
        notices = build_notices(settings, aws)  # first, so a failed run is published
        try:
            users, due = _parse(event)
        except BadInputError as exc:
            logger.error(
                "event refused",
                extra={"action": "event", "outcome": "refused", "reason": str(exc)},
            )
            raise
        result = run(users, due, settings=settings, aws=aws)
    except KeyturnError as exc:
        kind = type(exc).__name__
        failed = RunNotice("keyturn.rotate", "failed", request_id=request_id, error_kind=kind)
        _publish(notices, failed, logger)
        raise
    for failure in result["failed"]:
        logger.error("rotation failed", extra=failure)
    for item in result["untrusted"]:
        logger.warning("untrusted keyturn state ignored", extra={"detail": item})
    if result["due_not_enrolled"]:
        logger.info("due, not enrolled", extra={"users": result["due_not_enrolled"]})
    logger.info("rotation run done", extra={"summary": result["summary"]})
    unpublished = _publish(notices, _notice(result, request_id), logger)
    if result["failed"]:
        raise OperationFailedError(
            f"{len(result['failed'])} user(s) failed: "
            + "; ".join(f"{item['user']}: {item['error']}" for item in result["failed"][:3])
        )
    if unpublished:
        raise OperationFailedError(
            f"rotation ran, but its results were not published: {unpublished}"
        )
    return result


def _notice(result: dict[str, Any], request_id: str | None) -> RunNotice:
    """The run's results as ids and state words; an entry that is not one is left out."""
    users: list[UserResult] = []
    for item in result["results"]:
        try:
            users.append(
                UserResult(item["user"], item["state"], item["old_key_id"], item["new_key_id"])
            )
        except ValueError:
            continue
    failed = [item["user"] for item in result["failed"] if IAM_USER_NAME.fullmatch(item["user"])]
    outcome: NoticeOutcome = "failed" if result["failed"] else "ok"
    counts = {k: v for k, v in result["summary"].items() if isinstance(v, int)}
    return RunNotice(
        "keyturn.rotate",
        outcome,
        counts,
        request_id=request_id,
        users=users,
        failed_users=failed,
    )


def _publish(notices: SnsNotices | None, notice: RunNotice, logger: Any) -> str | None:
    from keyturn.handlers.enforce import publish

    return publish(notices, notice, logger)


def _parse(event: Any) -> tuple[list[str], bool]:
    """The users to name and whether to add the due ones; refuses what an event may not ask."""
    if event is None:
        return [], True
    if not isinstance(event, dict):
        raise BadInputError("rotate event must be a JSON object")
    if event.get("source") == "aws.events" or "detail-type" in event:
        if event.get("source") != "aws.events" or event.get("detail-type") != "Scheduled Event":
            raise BadInputError(
                "rotate event: expected a scheduled EventBridge event (source aws.events,"
                f" detail-type 'Scheduled Event'), got source {event.get('source')!r}"
            )
        extra = sorted(str(k) for k in event if k not in ENVELOPE and k != "detail")
        if extra:
            raise BadInputError(f"rotate event: unknown field(s) {', '.join(map(repr, extra))}")
        event = event.get("detail") or {}
        if not isinstance(event, dict):
            raise BadInputError("rotate event: detail must be a JSON object")
    if "dry_run" in event:
        raise BadInputError(
            "rotate event: the rotation function has no dry run (use `keyturn rotate"
            " --dry-run`): refused, nothing done"
        )
    unknown = sorted(str(k) for k in event if k not in EVENT_FIELDS)
    if unknown:
        raise BadInputError(
            f"rotate event: unknown field(s) {', '.join(map(repr, unknown[:5]))};"
            f" known: {', '.join(sorted(EVENT_FIELDS))}"
        )
    users = event.get("users", [])
    if not isinstance(users, list) or not all(
        isinstance(u, str) and IAM_USER_NAME.fullmatch(u) for u in users
    ):
        raise BadInputError("rotate event: users must be a list of IAM user names")
    due = event.get("due", not users)
    if not isinstance(due, bool):
        raise BadInputError("rotate event: due must be true or false")
    return list(dict.fromkeys(users)), due


def run(users: list[str], due: bool, *, settings: Any = None, aws: Any = None) -> dict[str, Any]:
    from keyturn.config import load_settings
    from keyturn.services.audit import AuditRequest
    from keyturn.services.rotate import UNTRUSTED, Outcome, run_many
    from keyturn.wiring import build_audit, build_aws, build_enrollment, build_rotation, build_store

    settings = settings or load_settings().settings
    aws = aws or build_aws(settings)
    store = build_store(settings, aws)
    service = build_rotation(settings, aws, store=store)
    enrollment = build_enrollment(settings, aws, store=store, rotation=service)
    workers = settings.rotate.worker_count()
    outcomes: list[Outcome] = []
    # 1. finish what earlier runs left, including deleting old keys whose grace passed
    outcomes += run_many(service.pending_users(), service.resume, workers=workers)
    # A user left promoted above (waiting for its old key to go quiet, which keeps that
    # old, "due" key active) or failed (an escalation) is mid-rotation: rotating it again
    # would only fail a second time. A finished rotation's user may well be due again.
    resumed = {o.user for o in outcomes if o.state in ("promoted", "failed")}
    # 2. rotate named and due users, enrolled ones only (a fresh key makes a stale report's
    #    "due" harmless)
    chosen = list(users)
    if due:
        policy = settings.policy.to_domain()
        audit = build_audit(settings, aws).run(AuditRequest())
        chosen += sorted(
            {
                item.key.user
                for item in audit.keys
                if item.key.active
                and item.finding.out_of_policy
                and item.key.user != "<root_account>"
                and item.key.user not in resumed
            }
        )
        threshold: timedelta | None = timedelta(days=policy.notify_after_days)
    else:
        threshold = None
    split = enrollment.partition(chosen)
    outcomes += run_many(
        split.enrolled,
        lambda user: service.rotate(user, only_if_older_than=threshold),
        workers=workers,
    )
    rejected = {r.user: r for r in [*service.rejections(), *split.rejected]}
    untrusted = [{"user": r.user, "message": r.line()} for r in rejected.values()]
    outcomes = [o for o in outcomes if o.state != UNTRUSTED]
    return {
        "summary": {
            "ok": sum(1 for o in outcomes if o.ok),
            "failed": sum(1 for o in outcomes if not o.ok),
            "due_not_enrolled": len(split.not_enrolled),
            "untrusted": len(untrusted),
            # consumers' events the bus refused: marked in the journal, retried next run
            "unpublished_events": sum(len(o.unpublished) for o in outcomes),
        },
        "due_not_enrolled": split.not_enrolled,
        "untrusted": untrusted,
        "results": [
            {
                "user": o.user,
                "state": str(o.state),
                "old_key_id": o.old_key_id,
                "new_key_id": o.new_key_id,
                # e.g. "old key still used by s3 in eu-west-1 12 min ago, waiting"
                "message": o.message,
                "warnings": list(o.warnings),
                "unpublished_events": list(o.unpublished),
            }
            for o in outcomes
            if o.ok
        ],
        "failed": [{"user": o.user, "error": o.message} for o in outcomes if not o.ok],
    }
