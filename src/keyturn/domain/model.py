"""Values the rest of keyturn passes around.

They are frozen so a record read from AWS cannot change under a decision made from it, and
none of them holds a secret access key: the only type that does is `NewKeySecret`, whose
repr hides it (invariant 5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

ROOT_USER = "<root_account>"
# IAM's own grammar for user names (CreateUser): the one check every input naming a user
# (an event, a secret's claim, a notice) goes through. Match it with `fullmatch`.
IAM_USER_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# AWS's documented FunctionName pattern for lambda:Invoke, narrowed: a name, a partial ARN
# (ACCOUNT:function:NAME) or a full ARN, with an optional version or alias qualifier
# (`rotate.probe`, keyturn.adapters.probe).
LAMBDA_FUNCTION = re.compile(
    r"^(arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-gov)?(-iso[a-z]?)?-[a-z]+-\d:\d{12}:function:"
    r"|\d{12}:function:)?[a-zA-Z0-9_-]{1,64}(:(\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)


class KeyStatus(StrEnum):
    ACTIVE = "Active"
    INACTIVE = "Inactive"


class Finding(StrEnum):
    """What the policy says about one key, from least to most urgent action."""

    OK = "ok"
    EXEMPT = "exempt"
    NOTIFY = "notify"
    UNUSED = "unused"
    DEACTIVATE = "deactivate"
    DELETE = "delete"

    @property
    def out_of_policy(self) -> bool:
        return self not in (Finding.OK, Finding.EXEMPT)


@dataclass(frozen=True, slots=True)
class LastUse:
    """When, where and through which service a key was last used (AWS keeps one per 15 min)."""

    date: datetime
    service: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One access key of one IAM user, as far as keyturn has read it.

    `key_id`, `contact`, `user_tags` and `user_groups` are None when they were not read:
    each costs a call per user, so the audit reads them only when asked.
    """

    account: str
    user: str
    slot: int
    status: KeyStatus
    created: datetime
    last_used: LastUse | None
    key_id: str | None = None
    contact: str | None = None
    user_tags: Mapping[str, str] | None = None
    user_groups: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        return self.status is KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Decision:
    finding: Finding
    reason: str


@dataclass(frozen=True, slots=True)
class AuditedKey:
    """A key with its age and the policy's decision, as every report shows it."""

    key: AccessKey
    age_days: int
    decision: Decision

    @property
    def finding(self) -> Finding:
        return self.decision.finding


@dataclass(frozen=True, slots=True)
class NewKeySecret:
    """A freshly created key pair. The secret never appears in repr, str or logs."""

    access_key_id: str
    secret_access_key: str = field(repr=False)

    def __str__(self) -> str:
        return f"NewKeySecret({self.access_key_id}, secret=***)"
