"""`keyturn.handlers.enforce.handler`: the key-age policy on a schedule (EventBridge).

Configured by environment, like the CLI (SOURCEMAIL, NOTIFYKEYAGE, KEYTURN_POLICY_GRACE_DAYS,
KEYTURN_POLICY_DELETE_AFTER_DAYS, KEYTURN_ENFORCE_DRY_RUN, KEYTURN_POLICY_CONTACT_TAG,
KEYTURN_NOTIFY_FALLBACK_CONTACT, KEYTURN_POLICY_EXEMPT_TAGS, KEYTURN_POLICY_EXEMPT_GROUPS,
KEYTURN_NOTIFY_SNS_TOPIC_ARN, ...). `enforce.dry_run` defaults to true here as on the CLI:
a deployment acts only when it says KEYTURN_ENFORCE_DRY_RUN=false.

Who can write this function's input: the event comes from whoever may invoke the function
(`lambda:InvokeFunction` on it, or a rule or schedule that targets it), which is a wider
set of principals than those who may change its configuration. So the event is a claim:
it may only make a run *more* careful than the deployment's settings, never less
(`tighten_dry_run`). `{"detail": {"dry_run": true}}` turns an acting deployment into a dry
run; `{"detail": {"dry_run": false}}` against a deployment configured as a dry run is
refused: one error line, one `event refused` audit record, nothing read or written, and the
invocation fails so the alarm sees it. Refused rather than ignored with a warning: an event
that asks for more than the deployment allows is a mistake or an attack, and a run that
quietly did less than its caller asked would report success for work it never did (no
false green). Unknown fields in `detail` are refused too: a misspelt `dryrun` must not
silently run for real.

Everything is built inside the call, never at import: a warm container must not carry a
client, a setting or a clock from one invocation into the next. Every action is one
structured JSON log line (Powertools Logger); the return value is counts only. Any failure
is logged and then raised, so Lambda retries, the DLQ and the alarm see it. When
`notify.sns_topic_arn` is set, the run's summary (counts only) or its failure (the error's
kind, never its text) is also published there (keyturn.adapters.sns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from keyturn.adapters.sns import Outcome, RunNotice, SnsNotices
from keyturn.config import load_settings
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.services.enforce import CALLS as SERVICE_CALLS
from keyturn.services.enforce import SEAL_CALLS, resolve_config
from keyturn.wiring import build_aws, build_enforce, build_notices

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SERVICE = "keyturn-enforce"
# What this function calls: the enforcer's own calls, sealing its state tags with the
# deployment's KMS key (KEYTURN_TRUST_MAC_KEY, required in a Lambda), and the operators'
# notice.
CALLS: tuple[Callable[..., Any], ...] = (*SERVICE_CALLS, *SEAL_CALLS, SnsNotices.publish)
DETAIL_FIELDS = frozenset({"dry_run"})


class EventRefusedError(BadInputError):
    """An event or message asked for a run less careful than the deployment allows."""


class LoggerSink:
    """Audit events as Powertools' structured JSON log lines."""

    def __init__(self, logger: Logger) -> None:
        self._logger = logger

    def emit(self, event: Mapping[str, Any]) -> None:
        self._logger.info(f"{event['action']} {event['outcome']}", extra=dict(event))


def parse_event(event: object) -> bool | None:
    """Accept an EventBridge scheduled event (or `{}` from a manual test invoke).

    Returns the dry-run the event asks for (`detail.dry_run`), or None; whether it may have
    it is `tighten_dry_run`'s decision.
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
    unknown = sorted(str(name) for name in detail if name not in DETAIL_FIELDS)
    if unknown:
        raise BadInputError(
            f"the event's detail has unknown field(s) {', '.join(map(repr, unknown[:5]))};"
            f" known: {', '.join(sorted(DETAIL_FIELDS))}"
        )
    override = detail.get("dry_run")
    if override is not None and not isinstance(override, bool):
        raise BadInputError(f"detail.dry_run should be true or false, got {override!r}")
    return override


def tighten_dry_run(configured: bool, requested: bool | None, *, source: str) -> bool:
    """The run's dry-run: the deployment's, made stricter by `requested`, never looser.

    Raises EventRefusedError when `requested` is False and the deployment is a dry run.
    """
    if requested is None:
        return configured
    if configured and not requested:
        raise EventRefusedError(
            f"{source} asks for dry_run false, but this deployment is configured as a dry"
            " run (KEYTURN_ENFORCE_DRY_RUN=true): refused, nothing done; an event may only"
            " make a run more careful"
        )
    return configured or requested


def refuse(sink: LoggerSink, exc: EventRefusedError, **fields: Any) -> None:
    """The audit record of a refused event or message (the error line is the caller's)."""
    sink.emit({"action": "event", "outcome": "refused", "reason": str(exc), **fields})


def publish(notices: SnsNotices | None, notice: RunNotice, logger: Logger) -> str | None:
    """Publish a run notice if a topic is configured; the reason (also logged) if that
    failed, else None. The run's own outcome is decided by the caller, never hidden."""
    if notices is None:
        return None
    try:
        notices.publish(notice)
    except KeyturnError as exc:
        logger.error("run notice not published", extra={"error": str(exc)})
        return str(exc)
    return None


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger = Logger(service=SERVICE)
    request_id = getattr(context, "aws_request_id", None)
    logger.set_correlation_id(request_id)
    sink = LoggerSink(logger)
    notices: SnsNotices | None = None
    try:
        loaded = load_settings()
        aws = build_aws(loaded.settings)
        notices = build_notices(loaded.settings, aws)  # first, so a failed run is published
        requested = parse_event(event)
        config = resolve_config(loaded.settings)
        try:
            dry_run = tighten_dry_run(config.dry_run, requested, source="the event")
        except EventRefusedError as exc:
            refuse(sink, exc, requested_dry_run=requested, configured_dry_run=config.dry_run)
            raise
        service = build_enforce(loaded.settings, config, sink, aws=aws)
        planned = service.plan()
        service.report_plan(planned, dry_run=dry_run)
        outcome = None if dry_run else service.apply(planned)
    except KeyturnError as exc:
        logger.error(
            "keyturn enforce failed", extra={"error": str(exc), "kind": type(exc).__name__}
        )
        failed = RunNotice(
            "keyturn.enforce", "failed", request_id=request_id, error_kind=type(exc).__name__
        )
        publish(notices, failed, logger)
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
    failures = outcome.failures if outcome is not None else []
    state: Outcome = "failed" if failures else ("dry-run" if dry_run else "ok")
    counts = {k: v for k, v in summary.items() if isinstance(v, int | bool)}
    unpublished = publish(
        notices, RunNotice("keyturn.enforce", state, counts, request_id=request_id), logger
    )
    if failures:
        raise OperationFailedError(
            f"{len(failures)} enforcement step(s) failed: {'; '.join(failures[:3])}"
        )
    if unpublished:
        raise OperationFailedError(f"enforce ran, but its summary was not published: {unpublished}")
    return summary
