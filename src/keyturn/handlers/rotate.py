"""Scheduled rotation Lambda: resume what is half-done, delete old keys past grace, rotate
the enrolled users the policy says are due.

Event (all optional): `{"users": ["alice"], "due": true}`. Configuration comes from the
environment (KEYTURN_ROTATE_*, KEYTURN_VAULT_*, VAULT_*, KEYTURN_TRUST_MAC_KEY), validated
before any write. Returns key ids only; raises if any user failed so the invocation is
marked failed.

Who writes the inputs: the event, whoever may invoke the function (so a user it names is
rotated only if enrolled, exactly like a due user: an event cannot enroll anyone); the
journal and enrollment tags, anyone with iam:TagUser (believed only when sealed with the
deployment's KMS key, keyturn.domain.trust). Users that are due but not enrolled, and state
that failed its seal, are reported in the result, never acted on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from keyturn.adapters.iam import IamDirectory
from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.secretsmanager import SecretsManagerStore
from keyturn.domain.errors import BadInputError, OperationFailedError

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
    IamTagJournal.read,
    IamTagJournal.write,
    IamTagJournal.users_with_records,
    IamTagEnrollments.tagged,
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
)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    from aws_lambda_powertools import Logger

    logger = Logger(service="keyturn-rotate")
    users, due = _parse(event)
    result = run(users, due)
    for failure in result["failed"]:
        logger.error("rotation failed", extra=failure)
    for item in result["untrusted"]:
        logger.warning("untrusted keyturn state ignored", extra={"detail": item})
    if result["due_not_enrolled"]:
        logger.info("due, not enrolled", extra={"users": result["due_not_enrolled"]})
    logger.info("rotation run done", extra={"summary": result["summary"]})
    if result["failed"]:
        raise OperationFailedError(
            f"{len(result['failed'])} user(s) failed: "
            + "; ".join(f"{item['user']}: {item['error']}" for item in result["failed"][:3])
        )
    return result


def _parse(event: Any) -> tuple[list[str], bool]:
    if event is None:
        return [], True
    if not isinstance(event, dict):
        raise BadInputError("rotate event must be a JSON object")
    users = event.get("users", [])
    if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
        raise BadInputError("rotate event: users must be a list of IAM user names")
    due = event.get("due", not users)
    if not isinstance(due, bool):
        raise BadInputError("rotate event: due must be true or false")
    return users, due


def run(users: list[str], due: bool, *, settings: Any = None, aws: Any = None) -> dict[str, Any]:
    from keyturn.config import load_settings
    from keyturn.services.audit import AuditRequest
    from keyturn.services.rotate import UNTRUSTED, Outcome, run_many
    from keyturn.wiring import build_audit, build_aws, build_enrollment, build_rotation, build_store

    settings = settings or load_settings().settings
    aws = aws or build_aws(settings)
    store = build_store(settings, aws)
    service = build_rotation(settings, aws, store=store)
    enrollment = build_enrollment(settings, aws, store=store)
    workers = settings.rotate.worker_count()
    outcomes: list[Outcome] = []
    # 1. finish what earlier runs left, including deleting old keys whose grace passed
    outcomes += run_many(service.pending_users(), service.resume, workers=workers)
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
        },
        "due_not_enrolled": split.not_enrolled,
        "untrusted": untrusted,
        "results": [
            {
                "user": o.user,
                "state": str(o.state),
                "old_key_id": o.old_key_id,
                "new_key_id": o.new_key_id,
            }
            for o in outcomes
            if o.ok
        ],
        "failed": [{"user": o.user, "error": o.message} for o in outcomes if not o.ok],
    }
