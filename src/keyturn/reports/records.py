"""The flat record every report format is built from: one per key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from keyturn.domain.model import AuditedKey, Finding
from keyturn.domain.policy import PolicySettings

COLUMNS = (
    "account",
    "user",
    "slot",
    "key_id",
    "status",
    "created",
    "age_days",
    "last_used_date",
    "last_used_service",
    "last_used_region",
    "contact",
    "finding",
    "reason",
)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def record(item: AuditedKey) -> dict[str, Any]:
    key = item.key
    used = key.last_used
    return {
        "account": key.account,
        "user": key.user,
        "slot": key.slot,
        "key_id": key.key_id,
        "status": key.status.value,
        "created": iso(key.created),
        "age_days": item.age_days,
        "last_used_date": iso(used.date) if used else None,
        "last_used_service": used.service if used else None,
        "last_used_region": used.region if used else None,
        "contact": key.contact,
        "finding": item.finding.value,
        "reason": item.decision.reason,
    }


def records(items: Iterable[AuditedKey]) -> Iterator[dict[str, Any]]:
    return (record(item) for item in items)


def policy_record(policy: PolicySettings) -> dict[str, Any]:
    return {
        "notify_after_days": policy.notify_after_days,
        "deactivate_after_days": policy.deactivate_after_days,
        "delete_inactive_after_days": policy.delete_inactive_after_days,
        "unused_after_days": policy.unused_after_days,
        "exempt_tags": dict(policy.exempt_tags),
        "exempt_groups": sorted(policy.exempt_groups),
    }


def summary(items: Iterable[AuditedKey]) -> dict[str, int]:
    counts = {finding.value: 0 for finding in Finding}
    total = 0
    for item in items:
        counts[item.finding.value] += 1
        total += 1
    return {"keys": total, **counts}
