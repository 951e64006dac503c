"""Secrets Manager rotation function for IAM access keys (seed 001's secret shape).

Attach `keyturn.handlers.secretsmanager_rotation.handler` to a secret holding
`{"UserName", "AccessKeyId", "SecretAccessKey"}`; Secrets Manager then calls it four times
per rotation with the same ClientRequestToken. They are keyturn's state machine seen
through Secrets Manager's steps:

- createSecret: write-ahead intent, CreateAccessKey, store as AWSPENDING (the token).
- setSecret: nothing to do: an IAM key is live from creation; there is no downstream
  system to push the secret to.
- testSecret: consecutive successful sts:GetCallerIdentity calls with the pending key.
- finishSecret: move AWSCURRENT to the token, then deactivate the old key.

Secrets Manager retries a failed step, so each step is idempotent. Failures are logged,
then raised, so the invocation fails and the rotation is marked failed.
"""

from __future__ import annotations

from typing import Any

from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.secretsmanager import SecretsManagerStore
from keyturn.domain.errors import BadInputError, KeyturnError

# What the four steps call; their @requires are this function's IAM policy. No
# CreateSecret: Secrets Manager only rotates a secret that exists.
CALLS = (
    SecretsManagerStore.read_document,
    SecretsManagerStore.describe,
    SecretsManagerStore.key_id,
    SecretsManagerStore.read_pending,
    SecretsManagerStore.put_pending,
    SecretsManagerStore.promote,
    IamKeys.list_keys,
    IamKeys.create_key,
    IamKeys.set_active,
    IamKeys.delete_key,
    IamKeys.last_used,
    IamTagJournal.read,
    IamTagJournal.write,
    KmsAuthenticator.seal,
    KmsAuthenticator.verify,
)

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def parse_event(event: Any) -> tuple[str, str, str]:
    """(secret id, token, step), or BadInputError naming what is wrong (invariant 7)."""
    if not isinstance(event, dict):
        raise BadInputError("rotation event must be a JSON object")
    secret_id, token, step = (event.get(k) for k in ("SecretId", "ClientRequestToken", "Step"))
    if not isinstance(secret_id, str) or not secret_id:
        raise BadInputError("rotation event: SecretId missing")
    if not isinstance(token, str) or not 32 <= len(token) <= 64:
        raise BadInputError("rotation event: ClientRequestToken must be 32-64 characters")
    if step not in STEPS:
        raise BadInputError(f"rotation event: Step must be one of {', '.join(STEPS)}")
    return secret_id, token, step


def handler(event: Any, context: Any = None) -> dict[str, str]:
    from aws_lambda_powertools import Logger

    logger = Logger(service="keyturn-secretsmanager-rotation")
    try:
        secret_id, token, step = parse_event(event)
        result = run_step(secret_id, token, step)
    except KeyturnError as exc:
        logger.error("rotation step failed", extra={"error": str(exc)})
        raise
    logger.info("rotation step done", extra=result)
    return result


def run_step(
    secret_id: str, token: str, step: str, *, settings: Any = None, aws: Any = None
) -> dict[str, str]:
    """One step; returns ids only (never the secret)."""
    from keyturn.adapters.secretsmanager import CURRENT, SecretsManagerStore
    from keyturn.config import load_settings
    from keyturn.wiring import build_aws, build_rotation

    settings = settings or load_settings().settings
    aws = aws or build_aws(settings)
    store = SecretsManagerStore(
        aws.client("secretsmanager"), secret_id.replace("{", "{{").replace("}", "}}")
    )
    doc = store.read_document("", CURRENT)
    user = (doc or {}).get("UserName")
    if not isinstance(user, str) or not user:
        raise BadInputError(
            f"secret {secret_id} has the wrong shape: its AWSCURRENT version needs a "
            '"UserName" naming the IAM user whose key it holds'
        )
    service = build_rotation(settings, aws, store=store)
    if step == "createSecret":
        outcome = service.prepare(user, token)
        return _ids(step, user, outcome.new_key_id)
    if step == "setSecret":
        return _ids(step, user, None)
    if step == "testSecret":
        service.verify_pending(user, token)
        return _ids(step, user, None)
    outcome = service.finish(user, token)
    if not outcome.ok:
        raise KeyturnError(outcome.message)
    return _ids(step, user, outcome.new_key_id)


def _ids(step: str, user: str, key_id: str | None) -> dict[str, str]:
    found = {"step": step, "user": user}
    if key_id:
        found["access_key_id"] = key_id
    return found
