"""Lambda: `keyturn.handlers.leases.handler` runs `lease tidy` on a schedule.

Revokes expired and abandoned leases and removes orphaned users. Everything is built per
invocation (nothing at import time), so a warm container never carries state over. When
tidy leaves work undone (a revoke failed, a lease became irrevocable) the handler logs it
and then raises, so the invocation fails and the alarm/DLQ sees it (STYLE anti-pattern 4).
Configuration comes from the bundled keyturn.toml / KEYTURN_* environment as for the CLI;
the DynamoDB store (`KEYTURN_LEASES_STORE=dynamodb`) is the one meant for Lambda.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from keyturn.config import load_settings
from keyturn.domain.errors import OperationFailedError
from keyturn.wiring import build_leases


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger = Logger(service="keyturn-leases")
    loaded = load_settings()
    service = build_leases(loaded)
    report = service.tidy()
    summary: dict[str, Any] = {
        "revoked": [o.lease_id for o in report.revoked if o.ok],
        "revoke_failed": [f"{o.lease_id}: {o.detail}" for o in report.revoked if not o.ok],
        "orphans_removed": report.orphans_removed,
        "orphans_waiting": report.orphans_waiting,
        "orphans_failed": report.orphans_failed,
        "irrevocable": report.irrevocable,
        "held_back": report.held_back,
        # users with keyturn's lease tags it cannot prove are its own: left untouched
        "not_ours": report.not_ours,
    }
    for line in report.not_ours:
        logger.warning("lease tidy left a look-alike user alone", extra={"detail": line})
    logger.info("lease tidy finished", extra=summary)
    if not report.ok:
        logger.error("lease tidy left work undone", extra=summary)
        first = [*summary["revoke_failed"], *report.orphans_failed, *report.irrevocable][:3]
        raise OperationFailedError(
            f"lease tidy left work undone: {len(summary['revoke_failed'])} failed revokes, "
            f"{len(report.irrevocable)} irrevocable leases, {len(report.orphans_failed)} "
            f"orphans not removed (first: {'; '.join(first)})"
        )
    return summary
