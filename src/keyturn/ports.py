"""The small protocols services depend on; adapters implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keyturn.adapters.events import KeyEvent
    from keyturn.adapters.iam import KeyMetadata, UserInfo
    from keyturn.adapters.probe import ProbeRequest
    from keyturn.adapters.ses import SendQuota
    from keyturn.domain.activity import ActivitySummary
    from keyturn.domain.leases import Lease, ManagedUser, Role, StsCredentials
    from keyturn.domain.model import AccessKey, KeyStatus, LastUse, NewKeySecret
    from keyturn.domain.rotation import IamKey, RotationRecord, StoreView
    from keyturn.domain.trust import Rejected


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


# -- leases (dynamic credentials) ---------------------------------------------------------


class LeaseStore(Protocol):
    """Where roles and lease records live (SQLite embedded, DynamoDB for Lambda).

    Every state change is a compare-and-set on the record's `version`, so two revokers (two
    processes, two Lambda instances) never both act on one lease.
    """

    def store_id(self) -> str:
        """A stable random id of this store; tagged on users so `tidy` only ever removes
        orphans issued through this store, never another installation's users."""
        ...

    def put_role(self, role: Role) -> None: ...

    def get_role(self, name: str) -> Role | None: ...

    def list_roles(self) -> list[Role]: ...

    def delete_role(self, name: str) -> bool: ...

    def create(self, lease: Lease) -> Lease:
        """Insert a new record (version 1); raises if the id exists."""
        ...

    def get(self, lease_id: str) -> Lease | None: ...

    def list_leases(self, prefix: str = "") -> list[Lease]:
        """Every lease whose id starts with `prefix`, sorted by id."""
        ...

    def replace(self, current: Lease, new: Lease) -> Lease | None:
        """Write `new` only if the stored version is still `current.version`; returns the
        stored record (version + 1), or None when someone else changed it first."""
        ...


class LeaseIam(Protocol):
    """IAM writes the lease engine makes (adapters/lease_iam.py)."""

    def create_user(
        self, name: str, path: str, boundary: str | None, tags: dict[str, str]
    ) -> None: ...

    def attach_user_policy(self, user: str, policy_arn: str) -> None: ...

    def put_user_policy(self, user: str, policy_name: str, document: str) -> None: ...

    def add_user_to_group(self, user: str, group: str) -> None: ...

    def create_access_key(self, user: str) -> NewKeySecret: ...

    def delete_user_everything(self, user: str) -> bool:
        """Remove all that blocks DeleteUser, then the user; False when it was gone."""
        ...

    def managed_users(self, path_prefixes: list[str], name_prefix: str) -> Iterator[ManagedUser]:
        """Users under these paths, named `name_prefix...`, carrying keyturn's lease tag."""
        ...


class StsIssuer(Protocol):
    def assume_role(
        self,
        role_arn: str,
        session_name: str,
        seconds: int,
        policy_arns: tuple[str, ...],
        policy: str | None,
    ) -> StsCredentials: ...

    def federation_token(
        self, name: str, seconds: int, policy_arns: tuple[str, ...], policy: str | None
    ) -> StsCredentials: ...


# -- rotation -------------------------------------------------------------------------------


class SecretStore(Protocol):
    """Where a user's key lives: a current, a pending and a previous version (DESIGN.md).

    Pending is written before verification and becomes current only by `promote`, so a
    consumer reading the current version never sees an unverified key (invariant 4).
    Every method is idempotent: calling it twice ends as calling it once (invariant 6).
    """

    def location(self, user: str) -> str:
        """Human-readable place of the user's entry (path or secret name), no secret."""
        ...

    def describe(self, user: str) -> StoreView: ...

    def key_id(self, user: str, stage: str) -> str | None:
        """The access key id held at `stage` (current/pending/previous), or None."""
        ...

    def put_pending(self, user: str, secret: NewKeySecret, token: str) -> None: ...

    def read_pending(self, user: str, token: str) -> NewKeySecret | None: ...

    def read_current(self, user: str) -> NewKeySecret | None: ...

    def promote(self, user: str, token: str) -> None: ...

    def restore_previous(self, user: str, from_token: str) -> None:
        """Make the previous version current again while `from_token` is current."""
        ...

    def discard_pending(self, user: str, token: str) -> None:
        """Take the pending version of `token` out of the pending stage (a rotation stopped
        before promotion); nothing when it is not pending (idempotent)."""
        ...


class Authenticator(Protocol):
    """Seals records only keyturn may write, and checks seals (keyturn.domain.trust)."""

    def seal(self, message: bytes) -> str:
        """A MAC over `message`, as IAM tag-safe text."""
        ...

    def verify(self, message: bytes, seal: str) -> bool:
        """True only when `seal` was made by this key over exactly `message`."""
        ...

    def describe(self) -> str:
        """Which key seals (a KMS key id, or the local key file): for messages, no secret."""
        ...


class RotationJournal(Protocol):
    """The write-ahead record of each user's latest rotation (no secret in it).

    `read` returns a `Rejected` for an entry whose seal does not verify (a forged or
    foreign record): the caller reports it and decides as if there were none.
    """

    def read(self, user: str) -> RotationRecord | Rejected | None: ...

    def write(self, record: RotationRecord) -> None: ...

    def users_with_records(self) -> list[str]: ...


class KeyManager(Protocol):
    """The IAM key operations rotation needs."""

    def list_keys(self, user: str) -> list[IamKey]: ...

    def create_key(self, user: str) -> NewKeySecret: ...

    def set_active(self, user: str, key_id: str, active: bool) -> None: ...

    def delete_key(self, user: str, key_id: str) -> None: ...

    def last_used(self, key_id: str) -> LastUse | None: ...


class RotationEvents(Protocol):
    """Tells consumers a key was rotated or retired (keyturn.adapters.events); raises a
    KeyturnError when the event could not be published."""

    @property
    def bus(self) -> str: ...

    def publish(self, event: KeyEvent) -> None: ...


class ConsumerProbe(Protocol):
    """Asks the consumers' own check whether a verified pending key may be promoted
    (keyturn.adapters.probe); raises a KeyturnError for anything but a clear yes."""

    @property
    def name(self) -> str: ...

    def check(self, request: ProbeRequest) -> None: ...


class KeyVerifier(Protocol):
    """Proves a new key works (several consecutive successful calls signed with it)."""

    def verify(self, user: str, secret: NewKeySecret) -> None: ...


# -- quarantine: what an exposed key did ---------------------------------------------------


class KeyActivitySource(Protocol):
    """What an access key did in a time window (keyturn.adapters.cloudtrail reads CloudTrail).

    Never raises for one region's failure: a region it could not search is listed in the
    summary's `regions_failed` and the summary is then not `complete`. Raises a KeyturnError
    only when it could search nothing at all.
    """

    def summary(self, access_key_id: str, start: datetime, end: datetime) -> ActivitySummary: ...
