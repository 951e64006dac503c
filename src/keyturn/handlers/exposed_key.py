"""The AWS Health `AWS_RISK_CREDENTIALS_EXPOSED` Lambda: contain every key the event names.

EventBridge delivers AWS Health's event (source aws.health, detail-type "AWS Health Event",
detail.service RISK, detail.eventTypeCode AWS_RISK_CREDENTIALS_EXPOSED, the key ids in
detail.affectedEntities[].entityValue) through the rule in deploy/template.yaml; each key
runs keyturn.services.quarantine once (several entities and the same key twice: once).

Who can write the event: AWS Health, and whoever may put events on the account's default
bus with that source (only AWS services may use `aws.*` sources there) or invoke this
function. So the event is a claim that may only ask keyturn to contain a key of this
account: the key's account and user are read from STS and IAM, never from the event; an
event of another shape, another type, another account, or carrying a field that would steer
the response (dry_run, delete, ...) is refused with one line and an `event refused` log
record before anything is read or written. The function never deletes a key (only an
operator's `keyturn quarantine --delete` does).

Returns key ids and state words only; raises when any key was not contained (refused, not
found, a root key, a step failed), so the invocation is marked failed and the Errors alarm
fires: an exposed key keyturn could not contain needs a person.

Consumers told: the rotation that replaces an exposed key the store served puts "Access Key
Rotated" on `rotate.event_bus` (the template's RotationEventBus), as the Rotate function
does, so a consumer that caches its key re-reads the store at once. The consumers' probe
(`rotate.probe`) is not given to this function: a quarantine's rotation never asks it (the
exposed key is already inactive; keyturn.services.rotate `_ask_probe` says why).
"""

from __future__ import annotations

from typing import Any

from keyturn.adapters.cloudtrail import CloudTrailActivity, EnabledRegions
from keyturn.adapters.enrollment_generation import KmsKeyTagGenerations
from keyturn.adapters.events import EventBridgeEvents
from keyturn.adapters.iam import IamDirectory
from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.iam_quarantine import IamIncidentTags, KeyOwners
from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
from keyturn.adapters.incident_store import S3Incidents
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.secretsmanager import SecretsManagerStore
from keyturn.adapters.ses import SesMailer
from keyturn.adapters.sns import SnsNotices
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError

# What this function calls (Secrets Manager as the store); their @requires are its policy.
CALLS = (
    KeyOwners.account_of,
    KeyOwners.owner,
    IamKeys.list_keys,
    IamKeys.set_active,
    IamIncidentTags.read,
    IamIncidentTags.write,
    KmsAuthenticator.seal,
    KmsAuthenticator.verify,
    # rotating an enrolled user whose store serves the exposed key
    IamTagEnrollments.read,
    KmsKeyTagGenerations.load,  # the enrollment generation the record must be sealed at
    IamKeys.create_key,
    IamKeys.delete_key,  # rotation: an orphan, or an inactive key making room
    IamTagJournal.read,
    IamTagJournal.write,
    SecretsManagerStore.describe,
    SecretsManagerStore.key_id,
    SecretsManagerStore.read_pending,
    SecretsManagerStore.put_pending,  # the secret exists: it serves the exposed key, so
    SecretsManagerStore.promote,  # no CreateSecret (rotate's first-rotation placeholder)
    EventBridgeEvents.publish,  # rotate.event_bus: consumers told of the replacement
    # what the key did
    CloudTrailActivity.summary,
    EnabledRegions.__call__,
    # telling people, and the record
    IamDirectory.user_tags,
    SesMailer.send_quota,  # enforce's SES rule (recipient_gate): sandbox or not,
    SesMailer.verification_status,  # who is verified,
    SesMailer.request_verification,  # a request for an owner who is not
    SesMailer.send,
    SnsNotices.publish,
    S3Incidents.write,
)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    from aws_lambda_powertools import Logger

    from keyturn.config import load_settings
    from keyturn.domain.quarantine import parse_health_event
    from keyturn.wiring import build_aws, build_quarantine

    logger = Logger(service="keyturn-exposed-key")
    try:
        request = parse_health_event(event)
    except BadInputError as exc:
        logger.error(
            "event refused", extra={"action": "event", "outcome": "refused", "reason": str(exc)}
        )
        raise
    settings = load_settings().settings
    aws = build_aws(settings)
    if request.account != aws.account_id():
        reason = (
            f"exposed-key event for account {request.account}, but this function acts in "
            f"{aws.account_id()}: refused, nothing done"
        )
        logger.error("event refused", extra={"action": "event", "outcome": "refused",
                                             "reason": reason})  # fmt: skip
        raise BadInputError(reason)
    for line in request.rejected:
        logger.error("entity refused", extra={"reason": line})
    service = build_quarantine(settings, aws)
    results = []
    for key_id in request.key_ids:
        try:
            outcome = service.contain(key_id)
        except KeyturnError as exc:  # contain() reports its own; this is the wiring's
            results.append({"key_id": key_id, "ok": False, "state": "failed", "message": str(exc)})
            continue
        row = outcome.to_dict()
        (logger.info if outcome.ok else logger.error)("exposed key", extra={"result": row})
        results.append(row)
    bad = [r for r in results if not r["ok"]]
    summary = {
        "event": request.event_arn,
        "contained": sum(1 for r in results if r["ok"]),
        "not_contained": len(bad),
        "refused_entities": len(request.rejected),
        "results": results,
    }
    if bad or request.rejected:
        lines = [_line(r) for r in bad[:3]] + list(request.rejected[:3])
        raise OperationFailedError(
            f"{len(bad) + len(request.rejected)} exposed key(s) not contained: " + "; ".join(lines)
        )
    return summary


def _line(row: dict[str, Any]) -> str:
    """One key's failure with its reasons (the warnings name the refused call)."""
    why = "; ".join(row.get("warnings") or [])
    return f"{row['key_id']}: {row['message']}" + (f" ({why[:600]})" if why else "")
