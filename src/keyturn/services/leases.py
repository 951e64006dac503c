"""Issue, renew, revoke and tidy leased AWS credentials (the capability of Vault's AWS
secrets engine, without Vault).

Crash safety of an iam_user issue comes from order: the lease record is written (PENDING)
before anything exists in IAM, and every IAM user carries tags naming its lease and this
store. Whatever a `kill -9` leaves behind is therefore either a PENDING lease older than
the tidy margin or a tagged user without a live lease, and `tidy` removes both.

Revoke always finishes: it claims the lease with compare-and-set (two revokers never both
act), removes the user completely, treats "already gone" as done, retries transient
failures with jittered backoff, and after `max_revoke_attempts` claims marks the lease
IRREVOCABLE and reports it instead of retrying forever.
"""

from __future__ import annotations

import random
import secrets
import string
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum

from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
from keyturn.adapters.lease_iam import SWEEP_STEPS, IamLeaseAdmin
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.errors import (
    BadInputError,
    EndpointUnreachableError,
    KeyturnError,
    NotFoundError,
    OperationFailedError,
)
from keyturn.domain.leases import (
    LEASE_PREFIX,
    TAG_LEASE,
    TAG_ROLE,
    TAG_STORE,
    CredentialType,
    Grant,
    Lease,
    LeaseState,
    NameParts,
    Role,
    check_prefix,
    issue_window,
    make_lease_id,
    parse_lease_id,
    render_name,
    renewed,
)
from keyturn.ports import Clock, LeaseIam, LeaseStore, StsIssuer

# The adapter methods each use of this service calls with the DynamoDB store (the one a
# deployment uses; SQLite needs no IAM). Their @requires declarations are the IAM policy
# (keyturn.deploy.functions); the least-privilege tests prove each list complete and minimal.
TIDY_CALLS: tuple[Callable[..., object], ...] = (
    DynamoLeaseStore.store_id,
    DynamoLeaseStore.list_leases,
    DynamoLeaseStore.get,
    DynamoLeaseStore.replace,
    IamLeaseAdmin.managed_users,
    IamLeaseAdmin.delete_user_everything,
)
ISSUE_CALLS: tuple[Callable[..., object], ...] = (
    DynamoLeaseStore.store_id,
    DynamoLeaseStore.get_role,
    DynamoLeaseStore.create,
    DynamoLeaseStore.get,
    DynamoLeaseStore.list_leases,
    DynamoLeaseStore.replace,
    IamLeaseAdmin.create_user,
    IamLeaseAdmin.attach_user_policy,
    IamLeaseAdmin.put_user_policy,
    IamLeaseAdmin.add_user_to_group,
    IamLeaseAdmin.create_access_key,
    IamLeaseAdmin.delete_user_everything,
    StsLeaseIssuer.assume_role,
    StsLeaseIssuer.federation_token,
)

INLINE_POLICY_NAME = "keyturn-lease"
ISSUE_STEPS = (
    "intent",
    "create_user",
    "attach_policies",
    "put_policy",
    "add_groups",
    "create_access_key",
    "active",
)
# Revoke's step boundaries: the claim, the sweep that empties and deletes the user (see
# keyturn.adapters.lease_iam.SWEEP_STEPS), and the REVOKED record.
REVOKE_STEPS = ("revoke_claimed", *SWEEP_STEPS, "revoked")


@dataclass(frozen=True, slots=True)
class LeaseEngineSettings:
    username_prefix: str = "keyturn"
    tidy_margin: timedelta = timedelta(minutes=15)
    max_revoke_attempts: int = 5
    claim_for: timedelta = timedelta(minutes=5)
    retries_per_attempt: int = 3
    workers: int = 8


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What `creds` prints. The secret and token are hidden from repr (invariant 5)."""

    lease: Lease
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()


class RevokeResult(StrEnum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already revoked"
    IN_PROGRESS = "in progress elsewhere"
    FAILED = "failed, will retry"
    IRREVOCABLE = "irrevocable"


@dataclass(frozen=True, slots=True)
class RevokeOutcome:
    lease_id: str
    result: RevokeResult
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result in (
            RevokeResult.REVOKED,
            RevokeResult.ALREADY_REVOKED,
            RevokeResult.IN_PROGRESS,
        )


@dataclass
class TidyReport:
    revoked: list[RevokeOutcome] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    orphans_waiting: list[str] = field(default_factory=list)  # younger than the margin
    orphans_failed: list[str] = field(default_factory=list)
    irrevocable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.irrevocable
            and not self.orphans_failed
            and all(outcome.ok for outcome in self.revoked)
        )


@dataclass(frozen=True, slots=True)
class RoleListing:
    role: Role
    source: str


def _token(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _no_checkpoint(step: str) -> None:
    return None


class LeaseService:
    def __init__(
        self,
        store: LeaseStore,
        iam: LeaseIam,
        sts: StsIssuer,
        clock: Clock,
        settings: LeaseEngineSettings,
        config_roles: Mapping[str, Role] | None = None,
        *,
        token: Callable[[int], str] = _token,
        sleep: Callable[[float], None] = time.sleep,
        checkpoint: Callable[[str], None] = _no_checkpoint,
    ) -> None:
        self._store = store
        self._iam = iam
        self._sts = sts
        self._clock = clock
        self.settings = settings
        self._config_roles = dict(config_roles or {})
        self._token = token
        self._sleep = sleep
        self._checkpoint = checkpoint
        self._store_id: str | None = None

    # -- roles --------------------------------------------------------------------------

    def write_role(self, role: Role) -> Role:
        if role.name in self._config_roles:
            raise BadInputError(
                f"role {role.name} is declared in {self._config_roles[role.name].source}; "
                "change it there"
            )
        role.check_renders(self.settings.username_prefix)
        self._store.put_role(replace(role, source="store"))
        return role

    def role(self, name: str) -> Role:
        found = self._config_roles.get(name) or self._store.get_role(name)
        if found is None:
            known = sorted({*self._config_roles, *(r.name for r in self._store.list_roles())})
            listing = ", ".join(known) if known else "none yet: `keyturn role write`"
            raise BadInputError(f"unknown role {name!r} (known: {listing})")
        return found

    def list_roles(self) -> list[Role]:
        merged = {role.name: role for role in self._store.list_roles()}
        merged.update(self._config_roles)
        return [merged[name] for name in sorted(merged)]

    def delete_role(self, name: str) -> None:
        """Leases already issued keep working and stay revocable: each records its grant."""
        if name in self._config_roles:
            raise BadInputError(
                f"role {name} is declared in {self._config_roles[name].source}; remove it there"
            )
        if not self._store.delete_role(name):
            raise BadInputError(f"unknown role {name!r}")

    # -- issue ----------------------------------------------------------------------------

    def issue(
        self, role_name: str, ttl: timedelta | None = None, display_name: str = "keyturn"
    ) -> IssuedCredential:
        """Validate everything first (invariant 7), then issue."""
        role = self.role(role_name)
        now = self._clock.now()
        window = issue_window(role, now, ttl)
        parts = NameParts(
            prefix=self.settings.username_prefix,
            display_name=display_name,
            role=role.name,
            unix_time=int(now.timestamp()),
            random=self._token(32).lower(),
        )
        principal = render_name(role.template, parts, role.name_limit)
        lease = Lease(
            lease_id=make_lease_id(role.name, self._token(24)),
            role=role.name,
            kind=role.credential_type,
            state=LeaseState.PENDING,
            issued=now,
            expires=window.expires,
            max_expires=window.max_expires,
            principal=principal,
            grant=Grant(
                policy_arns=role.policy_arns,
                inline_policy=INLINE_POLICY_NAME if role.policy_document else None,
                groups=role.iam_groups,
            ),
            updated=now,
        )
        if role.credential_type is CredentialType.IAM_USER:
            return self._issue_user(role, lease)
        return self._issue_sts(role, lease)

    def _issue_user(self, role: Role, lease: Lease) -> IssuedCredential:
        tags = {
            **role.iam_tags,
            TAG_LEASE: lease.lease_id,
            TAG_ROLE: role.name,
            TAG_STORE: self.store_id(),
        }
        pending = self._store.create(lease)
        self._checkpoint("intent")
        user = lease.principal
        try:
            self._iam.create_user(user, role.user_path, role.permissions_boundary_arn, tags)
            self._checkpoint("create_user")
            for arn in role.policy_arns:
                self._iam.attach_user_policy(user, arn)
            self._checkpoint("attach_policies")
            if role.policy_document:
                self._iam.put_user_policy(user, INLINE_POLICY_NAME, role.policy_document)
            self._checkpoint("put_policy")
            for group in role.iam_groups:
                self._iam.add_user_to_group(user, group)
            self._checkpoint("add_groups")
            key = self._iam.create_access_key(user)
            self._checkpoint("create_access_key")
        except KeyturnError as exc:
            raise self._roll_back(pending, exc) from exc
        active = self._store.replace(
            pending,
            replace(
                pending,
                state=LeaseState.ACTIVE,
                key_id=key.access_key_id,
                updated=self._clock.now(),
            ),
        )
        if active is None:
            # tidy decided this issue was abandoned and revoked it meanwhile.
            failure = OperationFailedError(
                f"{lease.lease_id} was revoked while being issued (by `lease tidy`?); the "
                "new user was removed, no credential was issued"
            )
            self._iam.delete_user_everything(user)
            raise failure
        self._checkpoint("active")
        return IssuedCredential(active, key.access_key_id, key.secret_access_key)

    def _roll_back(self, pending: Lease, cause: KeyturnError) -> KeyturnError:
        """An IAM step failed: remove what was created now, rather than wait for tidy."""
        outcome = self._revoke(pending, explicit=True)
        if outcome.result is RevokeResult.REVOKED:
            return cause
        return type(cause)(
            f"{cause} (and cleaning up {pending.principal} failed too: `keyturn lease "
            f"tidy` will remove it)"
        )

    def _issue_sts(self, role: Role, lease: Lease) -> IssuedCredential:
        seconds = int((lease.expires - lease.issued).total_seconds())
        if role.credential_type is CredentialType.ASSUMED_ROLE:
            creds = self._sts.assume_role(
                role.role_arns[0],
                lease.principal,
                seconds,
                role.policy_arns,
                role.policy_document,
            )
        else:
            creds = self._sts.federation_token(
                lease.principal, seconds, role.policy_arns, role.policy_document
            )
        # STS credentials need no cleanup: the record follows the issue, and its expiry is
        # the one STS set.
        active = self._store.create(
            replace(
                lease,
                state=LeaseState.ACTIVE,
                key_id=creds.access_key_id,
                expires=creds.expiration,
                max_expires=creds.expiration,
            )
        )
        return IssuedCredential(
            active, creds.access_key_id, creds.secret_access_key, creds.session_token
        )

    def store_id(self) -> str:
        if self._store_id is None:
            self._store_id = self._store.store_id()
        return self._store_id

    # -- read / renew -------------------------------------------------------------------------

    def get(self, lease_id: str) -> Lease:
        parse_lease_id(lease_id)
        lease = self._store.get(lease_id)
        if lease is None:
            raise NotFoundError(f"no lease {lease_id}")
        return lease

    def list_leases(self, prefix: str = LEASE_PREFIX) -> list[Lease]:
        if not prefix.startswith(LEASE_PREFIX) and not LEASE_PREFIX.startswith(prefix):
            raise BadInputError(f"prefix {prefix!r} must start with {LEASE_PREFIX}")
        return self._store.list_leases(prefix)

    def renew(self, lease_id: str, increment: timedelta | None = None) -> tuple[Lease, str | None]:
        lease = self.get(lease_id)
        if increment is None:
            known = self._config_roles.get(lease.role) or self._store.get_role(lease.role)
            increment = known.effective_default_ttl if known else lease.ttl
        updated, warning = renewed(lease, self._clock.now(), increment)
        stored = self._store.replace(lease, updated)
        if stored is None:
            raise OperationFailedError(f"{lease_id} changed while renewing; run it again")
        return stored, warning

    # -- revoke -----------------------------------------------------------------------------

    def revoke(self, lease_id: str) -> RevokeOutcome:
        return self._revoke(self.get(lease_id), explicit=True)

    def revoke_prefix(self, prefix: str) -> list[RevokeOutcome]:
        check_prefix(prefix)
        leases = [
            lease
            for lease in self._store.list_leases(prefix)
            if lease.state is not LeaseState.REVOKED
        ]
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            return list(pool.map(lambda lease: self._revoke(lease, explicit=True), leases))

    def _revoke(self, lease: Lease, *, explicit: bool) -> RevokeOutcome:
        now = self._clock.now()
        if lease.state is LeaseState.REVOKED:
            return RevokeOutcome(lease.lease_id, RevokeResult.ALREADY_REVOKED)
        if lease.state is LeaseState.IRREVOCABLE and not explicit:
            return RevokeOutcome(lease.lease_id, RevokeResult.IRREVOCABLE, lease.last_error or "")
        if lease.state is not LeaseState.IRREVOCABLE and not lease.claimable(now):
            return RevokeOutcome(lease.lease_id, RevokeResult.IN_PROGRESS)
        claimed = self._store.replace(
            lease,
            replace(
                lease,
                state=LeaseState.REVOKING,
                claimed_until=now + self.settings.claim_for,
                attempts=lease.attempts + 1,
                updated=now,
            ),
        )
        if claimed is None:
            return self._lost_race(lease.lease_id)
        self._checkpoint("revoke_claimed")
        detail = ""
        if lease.kind.is_sts:
            detail = (
                f"STS credentials cannot be revoked early; they stop working at "
                f"{lease.expires.isoformat()}"
            )
        else:
            try:
                existed = self._remove_user(claimed.principal)
            except KeyturnError as exc:
                return self._record_failure(claimed, exc)
            detail = "" if existed else f"user {claimed.principal} was already gone"
        done = self._store.replace(
            claimed,
            replace(
                claimed,
                state=LeaseState.REVOKED,
                claimed_until=None,
                last_error=None,
                updated=self._clock.now(),
            ),
        )
        if done is None:
            return self._lost_race(lease.lease_id)
        self._checkpoint("revoked")
        return RevokeOutcome(lease.lease_id, RevokeResult.REVOKED, detail)

    def _remove_user(self, user: str) -> bool:
        """Retry transient failures (throttling past botocore's own retries, a dropped
        connection) with jittered exponential backoff; other failures end this attempt."""
        attempt = 0
        while True:
            try:
                return self._iam.delete_user_everything(user)
            except (OperationFailedError, EndpointUnreachableError):
                attempt += 1
                if attempt >= self.settings.retries_per_attempt:
                    raise
                self._sleep(random.uniform(0, 0.5 * 2**attempt))  # noqa: S311 - jitter

    def _record_failure(self, claimed: Lease, exc: KeyturnError) -> RevokeOutcome:
        give_up = claimed.attempts >= self.settings.max_revoke_attempts
        failed = replace(
            claimed,
            state=LeaseState.IRREVOCABLE if give_up else LeaseState.REVOKING,
            claimed_until=None,
            last_error=str(exc),
            updated=self._clock.now(),
        )
        self._store.replace(claimed, failed)
        if give_up:
            return RevokeOutcome(
                claimed.lease_id,
                RevokeResult.IRREVOCABLE,
                f"gave up after {claimed.attempts} attempts: {exc}",
            )
        return RevokeOutcome(
            claimed.lease_id,
            RevokeResult.FAILED,
            f"attempt {claimed.attempts} of {self.settings.max_revoke_attempts}: {exc}",
        )

    def _lost_race(self, lease_id: str) -> RevokeOutcome:
        current = self._store.get(lease_id)
        if current is not None and current.state is LeaseState.REVOKED:
            return RevokeOutcome(lease_id, RevokeResult.ALREADY_REVOKED)
        return RevokeOutcome(lease_id, RevokeResult.IN_PROGRESS)

    # -- tidy --------------------------------------------------------------------------------

    def tidy(self) -> TidyReport:
        """Revoke expired and abandoned leases, then remove keyturn's orphaned users."""
        now = self._clock.now()
        margin = self.settings.tidy_margin
        report = TidyReport()
        due: list[Lease] = []
        for lease in self._store.list_leases(LEASE_PREFIX):
            if lease.state is LeaseState.IRREVOCABLE:
                report.irrevocable.append(lease.lease_id)
            elif lease.state is LeaseState.ACTIVE and lease.expired(now):
                due.append(lease)
            elif lease.state is LeaseState.PENDING and now - lease.issued >= margin:
                due.append(lease)  # an issue that crashed (or is very slow: it checks)
            elif lease.state is LeaseState.REVOKING and lease.claimable(now):
                due.append(lease)  # a revoke that failed or died part-way
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            report.revoked = list(pool.map(lambda item: self._revoke(item, explicit=False), due))
        report.irrevocable.extend(
            outcome.lease_id
            for outcome in report.revoked
            if outcome.result is RevokeResult.IRREVOCABLE
        )
        self._remove_orphans(report)
        return report

    def _remove_orphans(self, report: TidyReport) -> None:
        """Users tagged by this store whose lease is gone or revoked. ListUsers from "/"
        covers every role's user_path; the name prefix keeps ListUserTags to our users."""
        mine = self.store_id()
        now = self._clock.now()
        for user in self._iam.managed_users(["/"], self.settings.username_prefix):
            if user.store != mine:
                continue  # another keyturn installation's user: never ours to remove
            lease = self._store.get(user.lease_id)
            if lease is not None and lease.state is not LeaseState.REVOKED:
                continue  # a live lease owns it; the loop above handles expiry
            if now - user.created < self.settings.tidy_margin:
                report.orphans_waiting.append(user.name)
                continue
            try:
                self._remove_user(user.name)
            except KeyturnError as exc:
                report.orphans_failed.append(f"{user.name}: {exc}")
                continue
            report.orphans_removed.append(user.name)
