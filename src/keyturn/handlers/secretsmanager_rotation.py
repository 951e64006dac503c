"""Secrets Manager rotation function for IAM access keys (seed 001's secret shape).

Attach `keyturn.handlers.secretsmanager_rotation.handler` to a secret holding
`{"UserName", "AccessKeyId", "SecretAccessKey"}`; Secrets Manager then calls it four times
per rotation with the same ClientRequestToken. They are keyturn's state machine seen
through Secrets Manager's steps:

- createSecret: write-ahead intent, CreateAccessKey, store as AWSPENDING (the token).
- setSecret: nothing to do: an IAM key is live from creation; there is no downstream
  system to push the secret to.
- testSecret: consecutive successful sts:GetCallerIdentity calls with the pending key.
- finishSecret: move AWSCURRENT to the token (and AWSPENDING off it), then deactivate the
  old key. With `rotate.event_bus` set (the template passes its RotationEventBus), the
  promotion and the retirement put the same `Access Key Rotated` / `Access Key Retired`
  events on the bus as the scheduled rotation (keyturn.adapters.events); one the bus
  refuses is marked in the journal and put by the next step or rotation that reads it.
  `rotate.probe` is not asked here: a team gates this function's promotions with its own
  testSecret, and Secrets Manager retries a failed finishSecret.

Secrets Manager retries a failed step, so each step is idempotent. Failures are logged,
then raised, so the invocation fails and the rotation is marked failed.

Who can write this function's inputs (DESIGN.md, "who can write what"):

- The event (SecretId, ClientRequestToken, Step): Secrets Manager, on behalf of anyone
  allowed `secretsmanager:RotateSecret` on a secret that names this function, and anyone
  allowed `lambda:InvokeFunction` on it. A claim: it only says which secret to look at.
- The secret's value, every version (`UserName`, `AccessKeyId`, `SecretAccessKey`): the
  secret's consumers and admins (`PutSecretValue`, `UpdateSecret`). A claim.
- The secret's staging labels: holders of `UpdateSecretVersionStage` on it. The store's
  state, read as the CLI reads it (never trusted to name a user).
- The secret's **name**: whoever created it; Secrets Manager never renames a secret (and
  deleting and re-creating it needs CreateSecret again). A fact, once creating secrets
  under the prefix is reserved to keyturn's roles.
- `rotate.path` (KEYTURN_ROTATE_PATH): the deployment (whoever may
  `lambda:UpdateFunctionConfiguration`). Trusted configuration.
- The user's keys and their creation dates: IAM. Facts.
- The rotation journal (an IAM tag): anyone with `iam:TagUser`; how keyturn authenticates
  it is adapters/iam_rotation.py's business.

The user whose key is rotated is therefore **bound by the secret's name**: the secret must
be named exactly `rotate.path` rendered for the user its document claims (the template
must hold `{user}`; rendering is validated by domain.store_paths). Alice may rewrite
`UserName` in `keyturn/111122223333/alice` to `admin`, but keyturn's secret for admin is
`keyturn/111122223333/admin`, so the step is refused: one error line, one `refused` audit
event, and no IAM or store write. The binding is re-checked at every step, so a rewrite
between steps is refused too. This rests on one deployment rule: only keyturn's roles may
`secretsmanager:CreateSecret` under the prefix (the generated template grants CreateSecret
only to the Rotate function, scoped to `${SecretPrefix}*`, and grants this function no
CreateSecret at all; an SCP or permissions boundary should deny it to everyone else).

Why the name and not proof of possession (the current AccessKeyId + SecretAccessKey
authenticating as the user through sts:GetCallerIdentity): a key that enforce has
deactivated, or that was deleted, would make the secret unrotatable exactly when rotation
is needed; any leaked key of user X would bind any writable secret to X; and it would
cost an STS call per step. The name is free, cannot fail for a healthy secret, and cannot
be changed by anyone who can only write values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from keyturn.adapters.events import EventBridgeEvents
from keyturn.adapters.iam_rotation import IamKeys, IamTagJournal
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.secretsmanager import SecretsManagerStore, secret_name
from keyturn.domain.errors import BadInputError, KeyturnError
from keyturn.domain.model import IAM_USER_NAME
from keyturn.domain.store_paths import path_problem, render, require_user_placeholder
from keyturn.ports import EventSink

# What the four steps call; their @requires are this function's IAM policy. No
# CreateSecret: Secrets Manager only rotates a secret that exists.
CALLS = (
    secret_name,
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
    EventBridgeEvents.publish,  # rotate.event_bus: on finishSecret and on retirement
)

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
SERVICE = "keyturn-secretsmanager-rotation"
USER_FIELD = "UserName"
SHOWN_CLAIM = 64  # characters of a claimed user name shown in a refusal (hostile input)


class BindingRefusedError(BadInputError):
    """The secret's document names a user the secret's name does not belong to."""


@dataclass(frozen=True)
class Binding:
    """A secret bound to its IAM user by the secret's name."""

    name: str
    user: str
    account: str


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


class LoggerSink:
    """Audit events as Powertools' structured JSON log lines (warnings: they are refusals)."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def emit(self, event: Mapping[str, Any]) -> None:
        self._logger.warning(f"{event['action']} {event['outcome']}", extra=dict(event))


def handler(event: Any, context: Any = None) -> dict[str, str]:
    from aws_lambda_powertools import Logger

    logger = Logger(service=SERVICE)
    try:
        secret_id, token, step = parse_event(event)
        result = run_step(secret_id, token, step, events=LoggerSink(logger))
    except KeyturnError as exc:
        logger.error("rotation step failed", extra={"error": str(exc)})
        raise
    logger.info("rotation step done", extra=result)
    return result


def run_step(
    secret_id: str,
    token: str,
    step: str,
    *,
    settings: Any = None,
    aws: Any = None,
    events: EventSink | None = None,
) -> dict[str, str]:
    """One step; returns ids only (never the secret)."""
    from keyturn.adapters.event_log import NullSink
    from keyturn.config import load_settings
    from keyturn.wiring import build_aws, build_rotation

    settings = settings or load_settings().settings
    aws = aws or build_aws(settings)
    client = aws.client("secretsmanager")
    binding = bind(client, aws, settings.rotate.path, secret_id, step, events or NullSink())
    user = binding.user
    store = SecretsManagerStore(client, settings.rotate.path, account=binding.account)
    service = build_rotation(settings, aws, store=store, with_probe=False)
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
    found = _ids(step, user, outcome.new_key_id)
    if outcome.unpublished:  # owed to consumers: marked in the journal, retried later
        found["unpublished_events"] = ", ".join(outcome.unpublished)
        found["warnings"] = "; ".join(outcome.warnings)
    return found


def bind(
    client: Any, aws: Any, template: str, secret_id: str, step: str, events: EventSink
) -> Binding:
    """The secret's user, as its name (a fact) confirms the document's claim; else refused.

    Reads only: DescribeSecret, GetSecretValue (AWSCURRENT) and, when the template holds
    `{account}`, sts:GetCallerIdentity (the account whose IAM users this function rotates).
    """
    require_user_placeholder(
        template, "the Secrets Manager rotation function binds a secret to its user by name"
    )
    name = secret_name(client, secret_id)
    if path_problem(name, "secretsmanager") is not None:
        _refuse(name, None, None, template, step, events)
    literal = name.replace("{", "{{").replace("}", "}}")
    doc = SecretsManagerStore(client, literal).read_document("")
    claimed = (doc or {}).get(USER_FIELD)
    if not isinstance(claimed, str) or not claimed:
        raise BadInputError(
            f"secret {name} has the wrong shape: its AWSCURRENT version needs a "
            f'"{USER_FIELD}" naming the IAM user whose key it holds'
        )
    account = aws.account_id() if "{account}" in template else ""
    expected: str | None = None  # not a user name, or no valid secret name: not this one
    if IAM_USER_NAME.fullmatch(claimed):
        with contextlib.suppress(BadInputError):
            expected = render(template, account=account, user=claimed, store="secretsmanager")
    if expected != name:
        _refuse(name, claimed, expected, template, step, events)
    return Binding(name=name, user=claimed, account=account)


def _refuse(
    name: str,
    claimed: str | None,
    expected: str | None,
    template: str,
    step: str,
    events: EventSink,
) -> NoReturn:
    shown = None if claimed is None else _shown(claimed)
    events.emit(
        {
            "action": "secretsmanager-rotation.bind",
            "outcome": "refused",
            "secret": name,
            "claimed_user": shown,
            "expected_secret": expected,
            "template": template,
            "step": step,
        }
    )
    if shown is None:
        why = "its name is not one rotate.path renders"
    elif expected is None:
        why = f"its value names {shown}, which is no IAM user name rotate.path can render"
    else:
        why = f"its value names IAM user {shown}, but keyturn's secret for {shown} is {expected}"
    raise BindingRefusedError(
        f"secret {name}: refused: {why} (rotate.path {template}); the user is bound by the "
        "secret's name, which its value writers cannot change; no key was created or changed"
    )


def _shown(claimed: str) -> str:
    """A claimed name as one short printable token (it is hostile input)."""
    cut = claimed[:SHOWN_CLAIM] + ("..." if len(claimed) > SHOWN_CLAIM else "")
    return repr(cut)


def _ids(step: str, user: str, key_id: str | None) -> dict[str, str]:
    found = {"step": step, "user": user}
    if key_id:
        found["access_key_id"] = key_id
    return found
