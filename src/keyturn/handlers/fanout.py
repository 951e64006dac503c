"""Lambda: every account of an AWS Organization, fanned out through SQS.

`scheduler` (EventBridge schedule) lists the Organization's ACTIVE accounts and sends one
SQS message per account. `worker` (SQS event source, `ReportBatchItemFailures` on) runs
the task for each message's account as the member role, and reports the accounts that
failed as `batchItemFailures` (Powertools' batch utility), so SQS retries only those and
moves a message that keeps failing to the dead-letter queue. No home-made scheduler: the
queue is the work list, its visibility timeout the lock, its redrive policy the retry cap.

A message is `{"account_id": "123456789012", "task": "enforce" | "audit", "dry_run"?: bool}`.
Settings (thresholds, sender, role name, dry run) come from the environment as for the
other handlers, are validated once per invocation before any account is touched, and a bad
setting fails the whole invocation (it would fail every account the same way).
"""

from __future__ import annotations

import json
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
from keyturn.adapters.sqs import AccountQueue
from keyturn.config import Settings, load_settings
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.handlers.enforce import LoggerSink, parse_event
from keyturn.services.fanout import ACCOUNT_ID
from keyturn.wiring import (
    Aws,
    build_account_queue,
    build_audit,
    build_aws,
    build_aws_in_account,
    build_enforce,
    build_organizations,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

# What each function's own code calls; their @requires are its IAM policy. The worker only
# assumes the member role: what it then does in the account is the member role's policy.
SCHEDULER_CALLS: tuple[Callable[..., Any], ...] = (
    OrganizationDirectory.active_accounts,
    AccountQueue.send,
)
WORKER_CALLS: tuple[Callable[..., Any], ...] = (build_aws_in_account,)

Task = Literal["enforce", "audit"]


@dataclass(frozen=True)
class AccountJob:
    account_id: str
    task: Task
    dry_run: bool | None = None

    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = {"account_id": self.account_id, "task": self.task}
        if self.dry_run is not None:
            found["dry_run"] = self.dry_run
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
    return AccountJob(account, task, dry_run)


# -- scheduler ------------------------------------------------------------------------------


def scheduler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger = Logger(service="keyturn-fanout-scheduler")
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    try:
        dry_run = parse_event(event)
        settings = load_settings().settings
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


def run_job(job: AccountJob, settings: Settings, base: Aws, logger: Logger) -> dict[str, Any]:
    """The task in one account, as the member role; raises when anything in it failed."""
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
    dry_run = config.dry_run if job.dry_run is None else job.dry_run
    sink = _AccountSink(LoggerSink(logger), job.account_id)
    service = build_enforce(settings, config, sink, aws=aws)
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
    if _any_enforce(event):
        from keyturn.services.enforce import resolve_config

        resolve_config(settings)  # every account would fail the same way: fail once, now
    base = build_aws(settings)

    def one(record: SQSRecord) -> dict[str, Any]:
        try:
            job = parse_job(record.body)
            summary = run_job(job, settings, base, logger)
        except KeyturnError as exc:
            logger.error(
                "account failed",
                extra={"message_id": record.message_id, "error": str(exc)},
            )
            raise
        logger.info("account done", extra=summary)
        return summary

    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(
        event=event, record_handler=one, processor=processor, context=context
    )


def _any_enforce(event: Mapping[str, Any]) -> bool:
    for record in event.get("Records", []) if isinstance(event, Mapping) else []:
        try:
            if parse_job(record.get("body", "")).task == "enforce":
                return True
        except BadInputError:
            continue
    return False
