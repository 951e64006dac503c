"""The small protocols services depend on; adapters implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from keyturn.adapters.iam import KeyMetadata, UserInfo
    from keyturn.domain.model import AccessKey, LastUse


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class UserDirectory(Protocol):
    """What the audit reads about IAM users and keys."""

    def credential_report(self) -> Iterator[AccessKey]: ...

    def list_access_keys(self, user: str) -> list[KeyMetadata]: ...

    def last_used(self, key_id: str) -> LastUse | None: ...

    def get_user(self, user: str) -> UserInfo: ...

    def user_tags(self, user: str) -> dict[str, str]: ...

    def group_members(self, group: str) -> frozenset[str]: ...
