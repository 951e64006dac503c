"""The flat record every report format is built from: one per key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

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


class AuditReport(Protocol):
    """What a report is written from: a materialised `AuditResult` or a lazy `AuditStream`.

    `keys` is iterated exactly once, and `warnings` read only after it, so a writer works
    the same on both.
    """

    @property
    def generated_at(self) -> datetime: ...

    @property
    def policy(self) -> PolicySettings: ...

    @property
    def source(self) -> str: ...

    @property
    def keys(self) -> Iterable[AuditedKey]: ...

    @property
    def warnings(self) -> Sequence[str]: ...


class Tally:
    """Counts findings as keys stream past, for a summary written after them and --check."""

    def __init__(self) -> None:
        self.counts = {finding.value: 0 for finding in Finding}
        self.total = 0
        self.out_of_policy = 0

    def count(self, items: Iterable[AuditedKey]) -> Iterator[AuditedKey]:
        counts = self.counts
        for item in items:
            finding = item.finding
            counts[finding.value] += 1
            self.total += 1
            if finding.out_of_policy:
                self.out_of_policy += 1
            yield item

    def summary(self) -> dict[str, int]:
        return {"keys": self.total, **self.counts}


def summary(items: Iterable[AuditedKey]) -> dict[str, int]:
    tally = Tally()
    for _ in tally.count(items):
        pass
    return tally.summary()
