"""Every deployable keyturn function, and the IAM policy each one needs, derived from code.

A function names the adapter methods its code calls (each service keeps that list beside
itself: `services/enforce.py` `CALLS`, `services/leases.py` `TIDY_CALLS`, ...); every
method carries `@requires(...)` (keyturn.permissions). The policy is the union of those
actions, grouped by the resource IAM authorizes them against (keyturn.deploy.resources).
`keyturn policy NAME`, the SAM template and the least-privilege tests all read this one
registry, so the three cannot drift apart.

The Lambda service itself also acts with the function's role: it writes the log stream,
sends failed async events to the dead-letter queue, and polls SQS for the worker. Those
grants are declared here as `RuntimeGrant`s (no keyturn code makes those calls) and are
left out with `code_only=True`, e.g. for a person running the CLI.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keyturn.adapters.iam import IamDirectory
from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.permissions import actions_of

from .resources import DEFAULT_SCOPE, PLACEHOLDER_DEFAULTS, RESOURCE_KIND

_IAM = "arn:${AWS::Partition}:iam::${AWS::AccountId}"
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
SQS_POLL = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)


class FunctionUnavailable(OperationFailedError):
    """The function's code is not in this build (e.g. rotation before it lands)."""


@dataclass(frozen=True)
class RuntimeGrant:
    """Actions the Lambda service performs with the function's role, not keyturn code."""

    sid: str
    actions: tuple[str, ...]
    resource: str


@dataclass(frozen=True)
class Function:
    """One deployable function (or, with `lambda_=False`, a role for people/CI)."""

    name: str
    logical_id: str
    handler: str | None
    description: str
    calls_ref: str  # "module:ATTRIBUTE", a tuple of @requires-marked callables
    scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    runtime: tuple[RuntimeGrant, ...] = ()
    async_dlq: bool = True  # invoked asynchronously (schedule): failures go to the DLQ

    @property
    def is_lambda(self) -> bool:
        return self.handler is not None

    def calls(self) -> tuple[Callable[..., Any], ...]:
        module_name, _, attribute = self.calls_ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            raise FunctionUnavailable(
                f"{self.name}: its code ({module_name}) is not in this build yet"
            ) from None
        found = getattr(module, attribute, None)
        if found is None:
            raise FunctionUnavailable(
                f"{self.name}: {module_name} does not declare {attribute} (its calls) yet"
            )
        return tuple(found)

    def actions(self) -> list[str]:
        """The sorted IAM actions the function's code needs."""
        return actions_of(self.calls())

    def resources_for(self, kind: str) -> tuple[str, ...]:
        if not kind:
            return ("*",)
        arns = self.scope.get(kind) or DEFAULT_SCOPE[kind]
        return tuple(arn.replace("{function}", self.name) for arn in arns)


def _runtime(name: str, *, dlq: bool = True, poll: bool = False) -> tuple[RuntimeGrant, ...]:
    log_stream = DEFAULT_SCOPE["log-stream"][0].replace("{function}", name)
    grants = [RuntimeGrant("LambdaLogs", LOGS, log_stream)]
    if dlq:
        grants.append(
            RuntimeGrant("LambdaDeadLetters", ("sqs:SendMessage",), "${DeadLetterQueue.Arn}")
        )
    if poll:
        grants.append(RuntimeGrant("LambdaQueuePoller", SQS_POLL, "${AccountQueue.Arn}"))
    return tuple(grants)


LEASE_USERS = (_IAM + ":user${LeaseUserPath}${LeaseUserPrefix}*",)

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            name="enforce",
            logical_id="Enforce",
            handler="keyturn.handlers.enforce.handler",
            description="Key-age policy: notify, deactivate, optionally delete (daily).",
            calls_ref="keyturn.handlers.enforce:CALLS",
            runtime=_runtime("enforce"),
        ),
        Function(
            name="rotate",
            logical_id="Rotate",
            handler="keyturn.handlers.rotate.handler",
            description="Rotate access keys into Vault KV or Secrets Manager (scheduled).",
            calls_ref="keyturn.handlers.rotate:CALLS",
            runtime=_runtime("rotate"),
        ),
        Function(
            name="secretsmanager-rotation",
            logical_id="SecretsManagerRotation",
            handler="keyturn.handlers.secretsmanager_rotation.handler",
            description="The Secrets Manager rotation-function contract for access keys.",
            calls_ref="keyturn.handlers.secretsmanager_rotation:CALLS",
            runtime=_runtime("secretsmanager-rotation", dlq=False),
            async_dlq=False,  # Secrets Manager invokes it synchronously and retries itself
        ),
        Function(
            name="leases",
            logical_id="LeaseReaper",
            handler="keyturn.handlers.leases.handler",
            description="Lease tidy: revoke expired and abandoned leases, remove orphans.",
            calls_ref="keyturn.services.leases:TIDY_CALLS",
            scope={"user": LEASE_USERS},
            runtime=_runtime("leases"),
        ),
        Function(
            name="broker",
            logical_id="Broker",
            handler="keyturn.handlers.broker.handler",
            description="Lease broker: issue, renew, revoke, list for callers without IAM rights.",
            calls_ref="keyturn.services.broker:CALLS",
            scope={"user": LEASE_USERS, "role": (_IAM + ":role/*",)},
            runtime=_runtime("broker", dlq=False),
            async_dlq=False,  # invoked synchronously through its function URL
        ),
        Function(
            name="fanout-scheduler",
            logical_id="FanoutScheduler",
            handler="keyturn.handlers.fanout.scheduler",
            description="Lists the Organization's active accounts, one SQS message each.",
            calls_ref="keyturn.handlers.fanout:SCHEDULER_CALLS",
            runtime=_runtime("fanout-scheduler"),
        ),
        Function(
            name="fanout-worker",
            logical_id="FanoutWorker",
            handler="keyturn.handlers.fanout.worker",
            description="One account per SQS message: assume the member role, run the task.",
            calls_ref="keyturn.handlers.fanout:WORKER_CALLS",
            runtime=_runtime("fanout-worker", dlq=False, poll=True),
            async_dlq=False,  # SQS redrives its own failures to the DLQ
        ),
        Function(
            name="exposed-key",
            logical_id="ExposedKey",
            handler="keyturn.handlers.exposed_key.handler",
            description="AWS Health AWS_RISK_CREDENTIALS_EXPOSED: deactivate, rotate, tell.",
            calls_ref="keyturn.handlers.exposed_key:CALLS",
            runtime=_runtime("exposed-key"),
        ),
        # Not Lambda functions: the roles people and CI use, and the member-account role.
        Function(
            name="audit",
            logical_id="Audit",
            handler=None,
            description="keyturn audit (read-only).",
            calls_ref="keyturn.deploy.functions:AUDIT_CALLS",
        ),
        Function(
            name="lease-issuer",
            logical_id="LeaseIssuer",
            handler=None,
            description="keyturn creds / lease renew / revoke against the DynamoDB store.",
            calls_ref="keyturn.services.leases:ISSUE_CALLS",
            scope={
                "user": LEASE_USERS,
                "role": (_IAM + ":role/*",),
            },
        ),
    )
}

# What `keyturn audit` reads (services/audit.py). Kept here while audit.py is reworked on
# another branch; it belongs beside AuditService like enforce's CALLS.
AUDIT_CALLS: tuple[Callable[..., Any], ...] = (
    IamDirectory.credential_report,
    IamDirectory.list_access_keys,
    IamDirectory.user_tags,
    IamDirectory.get_user,
    IamDirectory.last_used,
    IamDirectory.group_members,
)

# The role a member account grants the fan-out worker (and operators running --org): what
# audit and the enforcer call in the account. Not the enforce function's own extras (its
# operators' notice to the SNS topic is published from the home account, as itself).
MEMBER_ROLE_CALLS = ("keyturn.deploy.functions:AUDIT_CALLS", "keyturn.services.enforce:CALLS")


def get(name: str) -> Function:
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise BadInputError(
            f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}"
        ) from None


# -- policy documents ----------------------------------------------------------------------

_SID_OF_KIND = {
    "": "AccountWide",
    "user": "Users",
    "group": "Groups",
    "mfa": "MfaDevices",
    "identity": "SesIdentities",
    "role": "Roles",
    "table": "LeaseTable",
    "queue": "AccountQueue",
    "secret": "Secrets",
    "key": "KmsKeys",
    "mac-key": "JournalKey",
    "log-stream": "Logs",
    "topic": "NoticeTopic",
    "event-bus": "RotationEventBus",
    "incident-object": "IncidentRecords",
    "function": "ProbeFunction",
}


def statements(
    actions: list[str], resources_for: Callable[[str], tuple[str, ...]], *, any_resource: bool
) -> list[dict[str, Any]]:
    """Actions grouped by the resources IAM checks them against, in a stable order."""
    by_kind: dict[str, list[str]] = {}
    for action in actions:
        if action not in RESOURCE_KIND:
            raise ValueError(f"{action}: add it to keyturn.deploy.resources.RESOURCE_KIND")
        kind = "" if any_resource else RESOURCE_KIND[action]
        by_kind.setdefault(kind, []).append(action)
    found = []
    for kind in sorted(by_kind):
        resources = list(resources_for(kind))
        found.append(
            {
                "Sid": _SID_OF_KIND[kind],
                "Effect": "Allow",
                "Action": sorted(by_kind[kind]),
                "Resource": resources[0] if len(resources) == 1 else resources,
            }
        )
    return found


def policy_document(
    function: Function, *, any_resource: bool = False, code_only: bool = False
) -> dict[str, Any]:
    """The policy with `${...}` placeholders left in (a CloudFormation Fn::Sub form)."""
    found = statements(function.actions(), function.resources_for, any_resource=any_resource)
    if not code_only:
        for grant in function.runtime:
            found.append(
                {
                    "Sid": grant.sid,
                    "Effect": "Allow",
                    "Action": sorted(grant.actions),
                    "Resource": "*" if any_resource else grant.resource,
                }
            )
    return {"Version": "2012-10-17", "Statement": found}


def member_role_document() -> dict[str, Any]:
    """What the member-account role allows: everything audit and enforce call."""
    actions: set[str] = set()
    for ref in MEMBER_ROLE_CALLS:
        module, _, attribute = ref.partition(":")
        actions.update(actions_of(getattr(importlib.import_module(module), attribute)))
    enforce = FUNCTIONS["enforce"]
    return {
        "Version": "2012-10-17",
        "Statement": statements(sorted(actions), enforce.resources_for, any_resource=False),
    }


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:.]+)\}")


def fill(document: Any, values: Mapping[str, str]) -> Any:
    """Replace every `${NAME}` with its value (`keyturn policy` prints concrete ARNs)."""
    merged = {**PLACEHOLDER_DEFAULTS, **values}

    def one(text: str) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in merged:
                raise BadInputError(f"no value for ${{{name}}}; pass --param {name}=VALUE")
            return merged[name]

        for _ in range(3):  # a default may itself hold placeholders (the queue ARNs)
            text = _PLACEHOLDER.sub(sub, text)
        return text

    if isinstance(document, str):
        return one(document)
    if isinstance(document, list):
        return [fill(item, values) for item in document]
    if isinstance(document, dict):
        return {key: fill(value, values) for key, value in document.items()}
    return document
