"""The key-age policy: facts about a key in, one finding out.

Pure and clock-free so that every boundary (day 29/30, 36/37, ...) is a unit test, and the
same function drives the audit report, the enforcer and `rotate --due`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from keyturn.domain.model import AccessKey, AuditedKey, Decision, Finding

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Thresholds in whole days. Defaults are seed 002's: notify at 30, deactivate 7 days later."""

    notify_after_days: int = 30
    grace_days: int = 7
    delete_after_days: int | None = None
    unused_after_days: int | None = None
    exempt_tags: Mapping[str, str] = field(default_factory=dict)
    exempt_groups: frozenset[str] = frozenset()

    @property
    def deactivate_after_days(self) -> int:
        return self.notify_after_days + self.grace_days

    @property
    def delete_inactive_after_days(self) -> int | None:
        if self.delete_after_days is None:
            return None
        return self.deactivate_after_days + self.delete_after_days


def age_in_days(created: datetime, now: datetime) -> int:
    """Whole days elapsed; a key created 29 days and 23 hours ago is 29 days old."""
    return int((now - created).total_seconds() // SECONDS_PER_DAY)


def exemption(key: AccessKey, policy: PolicySettings) -> str | None:
    """The reason a key's owner is exempt, or None. Unknown tags/groups never exempt."""
    if key.user_tags is not None:
        for tag, wanted in policy.exempt_tags.items():
            value = key.user_tags.get(tag)
            if value is not None and (wanted == "*" or value.lower() == wanted.lower()):
                return f"user tag {tag}={value}"
    if key.user_groups is not None:
        groups = sorted(key.user_groups & policy.exempt_groups)
        if groups:
            return f"member of exempt group {groups[0]}"
    return None


def classify(key: AccessKey, now: datetime, policy: PolicySettings) -> AuditedKey:
    """Decide what the policy asks for one key.

    Order of precedence: exempt, then for an active key deactivate > unused > notify, and
    for an inactive key delete (when deletion is configured). An inactive key is otherwise
    harmless and `ok`.
    """
    age = age_in_days(key.created, now)
    return AuditedKey(key=key, age_days=age, decision=_decide(key, age, now, policy))


def _decide(key: AccessKey, age: int, now: datetime, policy: PolicySettings) -> Decision:
    exempt = exemption(key, policy)
    if exempt is not None:
        return Decision(Finding.EXEMPT, exempt)
    if not key.active:
        delete_at = policy.delete_inactive_after_days
        if delete_at is not None and age >= delete_at:
            return Decision(Finding.DELETE, f"inactive and {age}d old (delete at {delete_at}d)")
        return Decision(Finding.OK, "inactive")
    if age >= policy.deactivate_after_days:
        return Decision(
            Finding.DEACTIVATE,
            f"{age}d old (deactivate at {policy.deactivate_after_days}d)",
        )
    unused = _unused_reason(key, age, now, policy)
    if unused is not None:
        return Decision(Finding.UNUSED, unused)
    if age >= policy.notify_after_days:
        return Decision(Finding.NOTIFY, f"{age}d old (notify at {policy.notify_after_days}d)")
    return Decision(Finding.OK, f"{age}d old")


def _unused_reason(key: AccessKey, age: int, now: datetime, policy: PolicySettings) -> str | None:
    limit = policy.unused_after_days
    if limit is None:
        return None
    if key.last_used is None:
        return f"never used in {age}d" if age >= limit else None
    idle = age_in_days(key.last_used.date, now)
    return f"unused for {idle}d (limit {limit}d)" if idle >= limit else None


def classify_all(
    keys: Iterable[AccessKey], now: datetime, policy: PolicySettings
) -> list[AuditedKey]:
    return [classify(key, now, policy) for key in keys]
