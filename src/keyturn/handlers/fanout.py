"""Lambda: every account of an AWS Organization, fanned out through SQS.

`scheduler` (EventBridge schedule) lists the Organization's ACTIVE accounts and sends one
SQS message per account. `worker` (SQS event source, `ReportBatchItemFailures` on) runs
the task for each message's account as the member role, and reports the accounts that
failed as `batchItemFailures` (Powertools' batch utility), so SQS retries only those and
moves a message that keeps failing to the dead-letter queue. No home-made scheduler: the
queue is the work list, its visibility timeout the lock, its redrive policy the retry cap.

A message is `{"account_id": "123456789012", "task": "enforce" | "audit", "dry_run"?: bool,
"role_name"?: str}`. Settings (thresholds, sender, role name, dry run, task) come from the
environment as for the other handlers, are validated once per invocation before any
account is touched, and a bad setting fails the whole invocation (it would fail every
account the same way).

Who can write the inputs, and what each may do:

- the scheduler's event: whoever may invoke the scheduler function (or target it with a
  rule). It may ask for a dry run (tighter), never for `dry_run: false` against a
  deployment configured as a dry run (refused, as the enforce function refuses it).
- a queue message: whoever may `sqs:SendMessage` to the account queue, which a queue
  policy or an over-broad grant can open wider than the function itself. A message is
  therefore a request checked against the deployment, never a command: its `task` may be
  `audit` when the deployment's is `enforce` (tighter), never `enforce` when it is `audit`;
  its `dry_run` may only tighten; a `role_name` other than the configured member role is
  refused; and its account must be one of the Organization's ACTIVE accounts, read by the
  worker itself (`organizations:ListAccounts`, once per invocation). If the Organization
  cannot be read, no message is trusted: each fails with the reason and is retried, then
  dead-lettered. A refused message gets one error log line and one `event refused` audit
  record, assumes no role and changes nothing; it is reported as a failed item.

When `notify.sns_topic_arn` is set, each account's result (counts) or failure (the error's
kind) is published to the operators' topic (keyturn.adapters.sns).

Two sets of credentials: IAM and SES calls in an account go through its member role; the
enforcement state tags are sealed and checked with the deployment's KMS key (in this, the
central account) through the worker's own role. A KMS key is regional and its key policy
would have to name every member role to be used through them; keeping it central keeps the
member role free of any KMS permission and the seals the same in every account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from keyturn.adapters.organizations import OrganizationDirectory
from keyturn.adapters.sns import Outcome, RunNotice, SnsNotices
from keyturn.adapters.sqs import AccountQueue
from keyturn.config import Settings, load_settings
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.handlers.enforce import (
    EventRefusedError,
    LoggerSink,
    parse_event,
    publish,
    refuse,
    tighten_dry_run,
)
from keyturn.services.enforce import SEAL_CALLS
from keyturn.services.fanout import ACCOUNT_ID
from keyturn.wiring import (
    Aws,
    build_account_queue,
    build_audit,
    build_authenticator,
    build_aws,
    build_aws_in_account,
    build_enforce,
    build_notices,
    build_organizations,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from keyturn.ports import Authenticator

# What each function's own code calls; their @requires are its IAM policy. The worker only
# assumes the member role: what it then does in the account is the member role's policy.
SCHEDULER_CALLS: tuple[Callable[..., Any], ...] = (
    OrganizationDirectory.active_accounts,
    AccountQueue.send,
)
# The worker also reads the Organization itself (a message's account must be a member),
# publishes each account's result to the operators' topic, and seals and checks the
# enforcement state tags with the central KMS key as itself: the member role neither may
# use that key nor has one of its own, so only IAM calls go through the assumed role.
WORKER_CALLS: tuple[Callable[..., Any], ...] = (
    build_aws_in_account,
    OrganizationDirectory.active_accounts,
    SnsNotices.publish,
    *SEAL_CALLS,
)
MESSAGE_FIELDS = frozenset({"account_id", "task", "dry_run", "role_name"})
ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")

Task = Literal["enforce", "audit"]


@dataclass(frozen=True)
class AccountJob:
    account_id: str
    task: Task
    dry_run: bool | None = None
    role_name: str | None = None

    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = {"account_id": self.account_id, "task": self.task}
        if self.dry_run is not None:
            found["dry_run"] = self.dry_run
        if self.role_name is not None:
            found["role_name"] = self.role_name
        return found


def parse_job(body: str) -> AccountJob:
    """One SQS message body; anything else is a BadInputError naming what is wrong."""
    try:
        data = json.loads(body)
    except ValueError:
        raise BadInputError("message body is not JSON") from None
    if not isinstance(data, Mapping):
        raise BadInputError("message body should be a JSON object")
    account, task, dry_run = data.get("account_id"), data.get("task"), data.get("dry_run")
    if not isinstance(account, str) or not ACCOUNT_ID.match(account):
        raise BadInputError(f"account_id should be 12 digits, got {account!r}")
    if task not in ("enforce", "audit"):
        raise BadInputError(f"task should be enforce or audit, got {task!r}")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadInputError(f"dry_run should be true or false, got {dry_run!r}")
    role = data.get("role_name")
    if role is not None and (not isinstance(role, str) or not ROLE_NAME.match(role)):
        raise BadInputError("role_name should be an IAM role name")
    unknown = sorted(str(name) for name in data if name not in MESSAGE_FIELDS)
    if unknown:
        raise BadInputError(
            f"message has unknown field(s) {', '.join(map(repr, unknown[:5]))};"
            f" known: {', '.join(sorted(MESSAGE_FIELDS))}"
        )
    return AccountJob(account, task, dry_run, role)


def admit(job: AccountJob, settings: Settings, members: frozenset[str]) -> bool | None:
    """Check a message against the deployment; the dry run it gets (None for audit).

    Raises EventRefusedError naming what the message asked for that the deployment does
    not allow. Pure: `members` is the Organization's ACTIVE accounts, read by the caller.
    """
    configured = settings.fanout
    if job.role_name is not None and job.role_name.strip("/") != configured.role_name.strip("/"):
        raise EventRefusedError(
            f"message for account {job.account_id} names role {job.role_name!r}, not the"
            f" configured member role {configured.role_name!r}: refused, nothing done"
        )
    if job.task == "enforce" and configured.task == "audit":
        raise EventRefusedError(
            f"message for account {job.account_id} asks for enforce, but this deployment's"
            " task is audit (KEYTURN_FANOUT_TASK): refused, nothing done; a message may only"
            " make a run more careful"
        )
    if job.account_id not in members:
        raise EventRefusedError(
            f"account {job.account_id} is not an active account of this Organization:"
            " refused, nothing done"
        )
    if job.task == "audit":
        return None
    return tighten_dry_run(
        settings.enforce.dry_run, job.dry_run, source=f"message for account {job.account_id}"
    )


# -- scheduler ------------------------------------------------------------------------------


def scheduler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger = Logger(service="keyturn-fanout-scheduler")
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    try:
        requested = parse_event(event)
        settings = load_settings().settings
        try:
            tighten_dry_run(settings.enforce.dry_run, requested, source="the event")
        except EventRefusedError as exc:
            refuse(LoggerSink(logger), exc, requested_dry_run=requested)
            raise
        dry_run = requested
        aws = build_aws(settings)
        queue = build_account_queue(settings, aws)
        accounts = build_organizations(aws).active_accounts()
        jobs = [AccountJob(ref.id, settings.fanout.task, dry_run) for ref in accounts]
        sent = queue.send([job.body() for job in jobs])
    except KeyturnError as exc:
        logger.error("fan-out failed", extra={"error": str(exc), "kind": type(exc).__name__})
        raise
    summary = {"accounts": sent, "task": settings.fanout.task}
    logger.info("accounts queued", extra=summary)
    return summary


# -- worker ---------------------------------------------------------------------------------


class _AccountSink:
    """Enforcement events as log lines that carry the account id."""

    def __init__(self, sink: LoggerSink, account: str) -> None:
        self._sink = sink
        self._account = account

    def emit(self, event: Mapping[str, Any]) -> None:
        self._sink.emit({**event, "account": self._account})


def run_job(
    job: AccountJob,
    settings: Settings,
    base: Aws,
    logger: Logger,
    dry_run: bool | None = None,
    authenticator: Authenticator | None = None,
) -> dict[str, Any]:
    """The task in one account, as the member role; raises when anything in it failed.

    `dry_run` is what `admit` decided (None: the deployment's own setting). Enforcement's
    state tags are sealed with `authenticator`, built from `base` (the worker's own
    credentials) when not given: never through the member role."""
    from keyturn.services.audit import AuditRequest
    from keyturn.services.enforce import resolve_config

    aws = build_aws_in_account(base, job.account_id, settings.fanout.role_name)
    if job.task == "audit":
        result = build_audit(settings, aws).run(AuditRequest())
        return {
            "account": job.account_id,
            "keys": len(result.keys),
            "out_of_policy": result.out_of_policy,
        }
    config = resolve_config(settings)
    if dry_run is None:
        dry_run = config.dry_run
    sink = _AccountSink(LoggerSink(logger), job.account_id)
    if authenticator is None:
        authenticator = build_authenticator(settings, base)
    service = build_enforce(settings, config, sink, aws=aws, authenticator=authenticator)
    planned = service.plan()
    service.report_plan(planned, dry_run=dry_run)
    summary: dict[str, Any] = {
        "account": job.account_id,
        "dry_run": dry_run,
        "planned": len(planned.steps),
    }
    if not dry_run:
        outcome = service.apply(planned)
        summary.update(outcome.summary())
        if outcome.failures:
            raise OperationFailedError(
                f"{len(outcome.failures)} step(s) failed: {'; '.join(outcome.failures[:3])}"
            )
    return summary


def worker(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    logger = Logger(service="keyturn-fanout-worker")
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    settings = load_settings().settings
    enforcing = _any_enforce(event)
    if enforcing:
        from keyturn.services.enforce import resolve_config

        resolve_config(settings)  # every account would fail the same way: fail once, now
    base = build_aws(settings)
    # One authenticator for every account, with the worker's own (central) credentials.
    authenticator = build_authenticator(settings, base) if enforcing else None
    notices = build_notices(settings, base)
    organization = _Organization(base)
    sink = LoggerSink(logger)

    def one(record: SQSRecord) -> dict[str, Any]:
        account: str | None = None
        try:
            job = parse_job(record.body)
            account = job.account_id
            try:
                dry_run = admit(job, settings, organization.members())
            except EventRefusedError as exc:
                refuse(sink, exc, account=job.account_id, message_id=record.message_id)
                raise
            summary = run_job(job, settings, base, logger, dry_run, authenticator)
        except KeyturnError as exc:
            logger.error(
                "account failed",
                extra={"message_id": record.message_id, "error": str(exc)},
            )
            failed = RunNotice(
                "keyturn.fanout", "failed", account=account, error_kind=type(exc).__name__
            )
            publish(notices, failed, logger)
            raise
        logger.info("account done", extra=summary)
        counts = {k: v for k, v in summary.items() if isinstance(v, int | bool)}
        state: Outcome = "dry-run" if summary.get("dry_run") else "ok"
        notice = RunNotice("keyturn.fanout", state, counts, account=account)
        unpublished = publish(notices, notice, logger)
        if unpublished:  # the account is retried: its run is idempotent, the notice is not lost
            raise OperationFailedError(
                f"account {account} done, but its notice was not published: {unpublished}"
            )
        return summary

    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(
        event=event, record_handler=one, processor=processor, context=context
    )


class _Organization:
    """The Organization's ACTIVE account ids, read once per invocation when first needed.

    A read that fails is remembered and raised for every message: without the member list
    no message's account can be trusted.
    """

    def __init__(self, aws: Aws) -> None:
        self._aws = aws
        self._members: frozenset[str] | None = None
        self._error: KeyturnError | None = None

    def members(self) -> frozenset[str]:
        if self._members is None and self._error is None:
            try:
                found = build_organizations(self._aws).active_accounts()
                self._members = frozenset(ref.id for ref in found)
            except KeyturnError as exc:
                self._error = exc
        if self._error is not None:
            raise type(self._error)(
                f"cannot check that the message's account is in the Organization: {self._error}"
            )
        assert self._members is not None
        return self._members


def _any_enforce(event: Mapping[str, Any]) -> bool:
    for record in event.get("Records", []) if isinstance(event, Mapping) else []:
        try:
            if parse_job(record.get("body", "")).task == "enforce":
                return True
        except BadInputError:
            continue
    return False
