"""`keyturn.handlers.enforce.handler`: the key-age policy on a schedule (EventBridge).

Configured by environment, like the CLI (SOURCEMAIL, NOTIFYKEYAGE, KEYTURN_POLICY_GRACE_DAYS,
KEYTURN_POLICY_DELETE_AFTER_DAYS, KEYTURN_ENFORCE_DRY_RUN, KEYTURN_POLICY_CONTACT_TAG,
KEYTURN_NOTIFY_FALLBACK_CONTACT, KEYTURN_POLICY_EXEMPT_TAGS, KEYTURN_POLICY_EXEMPT_GROUPS,
...). `enforce.dry_run` defaults to true here as on the CLI: a deployment acts only when it
says KEYTURN_ENFORCE_DRY_RUN=false.

Everything is built inside the call, never at import: a warm container must not carry a
client, a setting or a clock from one invocation into the next. Every action is one
structured JSON log line (Powertools Logger); the return value is counts only. Any failure
is logged and then raised, so Lambda retries, the DLQ and the alarm see it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from keyturn.config import load_settings
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.services.enforce import resolve_config
from keyturn.wiring import build_enforce

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SERVICE = "keyturn-enforce"


class LoggerSink:
    """Audit events as Powertools' structured JSON log lines."""

    def __init__(self, logger: Logger) -> None:
        self._logger = logger

    def emit(self, event: Mapping[str, Any]) -> None:
        self._logger.info(f"{event['action']} {event['outcome']}", extra=dict(event))


def parse_event(event: object) -> bool | None:
    """Accept an EventBridge scheduled event (or `{}` from a manual test invoke).

    Returns a dry-run override when the event's `detail` carries `{"dry_run": true|false}`.
    """
    if not isinstance(event, Mapping):
        raise BadInputError(f"expected an EventBridge event object, got {type(event).__name__}")
    if not event:
        return None
    source, kind = event.get("source"), event.get("detail-type")
    if source != "aws.events" or kind != "Scheduled Event":
        raise BadInputError(
            f"expected a scheduled EventBridge event (source aws.events, detail-type"
            f" 'Scheduled Event'), got source {source!r}, detail-type {kind!r}"
        )
    detail = event.get("detail") or {}
    if not isinstance(detail, Mapping):
        raise BadInputError("the event's detail should be an object")
    override = detail.get("dry_run")
    if override is not None and not isinstance(override, bool):
        raise BadInputError(f"detail.dry_run should be true or false, got {override!r}")
    return override


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger = Logger(service=SERVICE)
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    try:
        override = parse_event(event)
        loaded = load_settings()
        config = resolve_config(loaded.settings)
        dry_run = config.dry_run if override is None else override
        service = build_enforce(loaded.settings, config, LoggerSink(logger))
        planned = service.plan()
        service.report_plan(planned, dry_run=dry_run)
        outcome = None if dry_run else service.apply(planned)
    except KeyturnError as exc:
        logger.error(
            "keyturn enforce failed", extra={"error": str(exc), "kind": type(exc).__name__}
        )
        raise
    summary: dict[str, Any] = {
        "dry_run": dry_run,
        "planned": len(planned.steps),
        "skipped": len(planned.skips),
        "within_policy": planned.ok,
        "warnings": len(planned.warnings),
    }
    if outcome is not None:
        summary.update(outcome.summary())
    logger.info("keyturn enforce finished", extra={"summary": summary})
    if outcome is not None and outcome.failures:
        raise OperationFailedError(
            f"{len(outcome.failures)} enforcement step(s) failed: {'; '.join(outcome.failures[:3])}"
        )
    return summary
