"""The small protocols services depend on; adapters implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keyturn.adapters.iam import KeyMetadata, UserInfo
    from keyturn.adapters.ses import SendQuota
    from keyturn.domain.model import AccessKey, KeyStatus, LastUse


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


class KeyWriter(Protocol):
    """The IAM writes enforcement makes (see keyturn.adapters.iam_keys)."""

    def set_status(self, user: str, key_id: str, status: KeyStatus) -> None: ...

    def delete_key(self, user: str, key_id: str) -> bool: ...

    def tag_user(self, user: str, tags: dict[str, str]) -> None: ...

    def untag_user(self, user: str, keys: list[str]) -> None: ...


class Mailer(Protocol):
    """Sending notices and SES identity verification (see keyturn.adapters.ses)."""

    def send(self, *, source: str, to: str, subject: str, text: str, html: str) -> str: ...

    def verification_status(self, identities: Iterable[str]) -> dict[str, str]: ...

    def request_verification(self, address: str) -> None: ...

    def send_quota(self) -> SendQuota: ...


class EventSink(Protocol):
    """Where structured audit events go: a JSON-lines file, a Lambda logger, a list."""

    def emit(self, event: Mapping[str, Any]) -> None: ...
