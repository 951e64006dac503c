"""Issue, renew, revoke and tidy leased AWS credentials (the capability of Vault's AWS
secrets engine, without Vault).

Crash safety of an iam_user issue comes from order: the lease record is written (PENDING,
naming the user it is about to create) before anything exists in IAM. Whatever a `kill -9`
leaves behind is therefore a PENDING lease older than the tidy margin, which `tidy` revokes
by the user name *its own record* holds, or (an issue that lost a race with tidy) a user
whose lease record is REVOKED and names it.

Trust: IAM users and their tags are writable by anyone with `iam:CreateUser` /
`iam:TagUser`, so a user's name and lease tags are a claim, never a command. `tidy`
removes a user only when the lease store (which only keyturn writes) has a record naming
exactly that user, and the name has the exact structure of its role's username template;
any other user carrying keyturn's tags (a look-alike such as `keyturn-deployer` with tags
copied from a real lease user) is left untouched and named in one line of the report.

Revoke always finishes or says it did not: it claims the lease with compare-and-set (two
revokers never both act; a renew that wins the race is retried over, never mistaken for
"someone else is revoking"), removes the user completely, treats "already gone" as done,
retries transient failures with jittered backoff, and after `max_revoke_attempts` claims
marks the lease IRREVOCABLE and reports it instead of retrying forever. An outcome is `ok`
only when the lease is REVOKED.
"""

from __future__ import annotations

import random
import secrets
import string
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
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
    DEFAULT_USER_TEMPLATE,
    LEASE_PREFIX,
    TAG_LEASE,
    TAG_ROLE,
    TAG_STORE,
    CredentialType,
    Grant,
    Lease,
    LeaseState,
    ManagedUser,
    NameParts,
    Role,
    check_prefix,
    format_duration,
    issue_window,
    make_lease_id,
    parse_lease_id,
    render_name,
    renewed,
    under_prefix,
    username_pattern,
)
from keyturn.domain.model import NewKeySecret
from keyturn.ports import Clock, KeyVerifier, LeaseIam, LeaseStore, StsIssuer

# The adapter methods each use of this service calls with the DynamoDB store (the one a
# deployment uses; SQLite needs no IAM). Their @requires declarations are the IAM policy
# (keyturn.deploy.functions); the least-privilege tests prove each list complete and minimal.
TIDY_CALLS: tuple[Callable[..., object], ...] = (
    DynamoLeaseStore.store_id,
    DynamoLeaseStore.list_leases,
    DynamoLeaseStore.get,
    DynamoLeaseStore.get_role,  # the role's username template: part of an orphan's proof
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
    "ready",
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
    # A revoke that finds another revoker's live claim waits this long (polling) for it to
    # finish, then reports the lease as not revoked rather than claim success it did not see.
    wait_for_other_revoker: timedelta = timedelta(seconds=10)
    poll_every: timedelta = timedelta(milliseconds=250)
    # Compare-and-set attempts to claim a lease that keeps changing (renewed meanwhile).
    claim_attempts: int = 5


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
    IN_PROGRESS = "not revoked: in progress elsewhere"
    CONTENDED = "not revoked: the lease kept changing"
    FAILED = "failed, will retry"
    IRREVOCABLE = "irrevocable"


@dataclass(frozen=True, slots=True)
class RevokeOutcome:
    lease_id: str
    result: RevokeResult
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Only a lease seen REVOKED counts: "someone else is on it" is not a revoke."""
        return self.result in (RevokeResult.REVOKED, RevokeResult.ALREADY_REVOKED)


@dataclass
class TidyReport:
    revoked: list[RevokeOutcome] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    orphans_waiting: list[str] = field(default_factory=list)  # younger than the margin
    orphans_failed: list[str] = field(default_factory=list)
    irrevocable: list[str] = field(default_factory=list)
    # Leases tidy did not act on yet, each with why (inside the margin, claimed elsewhere).
    held_back: list[str] = field(default_factory=list)
    # Users carrying keyturn's lease tags that keyturn cannot prove are its own: one line
    # each, left untouched. Reported, not failed: a look-alike is hostile input, not undone
    # work.
    not_ours: list[str] = field(default_factory=list)

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
        ready: KeyVerifier | None = None,
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
        # Proves a new iam_user key works before it is handed out (the rotation verifier's
        # rule: N successful sts:GetCallerIdentity calls in a row, bounded). None: no wait.
        self._ready = ready
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
        self,
        role_name: str,
        ttl: timedelta | None = None,
        display_name: str = "keyturn",
        owner: str | None = None,
        *,
        wait: bool = True,
        owner_id: str | None = None,
    ) -> IssuedCredential:
        """Validate everything first (invariant 7), then issue. An iam_user key is returned
        only once it has authenticated several times in a row (`wait=False`: at once, as
        Vault does; IAM may then refuse it for 5-15 s); STS credentials work at once.
        `owner`, `owner_id`: the canonical caller the broker authenticated and its AWS
        unique id (recorded on the lease; see keyturn.domain.authorization)."""
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
            owner=owner,
            owner_id=owner_id,
        )
        if role.credential_type is CredentialType.IAM_USER:
            return self._issue_user(role, lease, wait=wait)
        return self._issue_sts(role, lease)

    def _issue_user(self, role: Role, lease: Lease, *, wait: bool) -> IssuedCredential:
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
            if wait and self._ready is not None:
                # Still PENDING while it waits: a crash here leaves what tidy revokes, and a
                # key that never works is rolled back below, never handed out half-ready.
                self._await_ready(lease.lease_id, user, key)
            self._checkpoint("ready")
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

    def _await_ready(self, lease_id: str, user: str, key: NewKeySecret) -> None:
        assert self._ready is not None
        try:
            self._ready.verify(user, key)
        except KeyturnError as exc:
            raise OperationFailedError(
                f"{lease_id}: {exc}; no credential was handed out "
                "(leases.ready_timeout_seconds sets the wait; `--no-wait` skips it)"
            ) from exc

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
        """Leases under `prefix` by whole path segments (see `under_prefix`)."""
        if not prefix.startswith(LEASE_PREFIX) and not LEASE_PREFIX.startswith(prefix):
            raise BadInputError(f"prefix {prefix!r} must start with {LEASE_PREFIX}")
        return [
            lease
            for lease in self._store.list_leases(prefix.rstrip("/"))
            if under_prefix(prefix, lease.lease_id)
        ]

    def renew(self, lease_id: str, increment: timedelta | None = None) -> tuple[Lease, str | None]:
        """Without an increment, the role's default TTL from now (Vault's renew), or the
        lease's own TTL when its role is gone. Never moves the expiry earlier (see
        `renewed`). A renew that loses the compare-and-set to a revoke fails clearly; one
        that loses it to another renew tries again on the fresh record."""
        lease = self.get(lease_id)
        if increment is None:
            known = self._config_roles.get(lease.role) or self._store.get_role(lease.role)
            increment = known.effective_default_ttl if known else lease.ttl
        for _ in range(self.settings.claim_attempts):
            updated, warning = renewed(lease, self._clock.now(), increment)
            stored = self._store.replace(lease, updated)
            if stored is not None:
                return stored, warning
            current = self._store.get(lease_id)
            if current is None or current.state is not LeaseState.ACTIVE:
                state = current.state.value if current else "gone"
                raise OperationFailedError(
                    f"{lease_id} is being revoked (now {state}): not renewed"
                )
            lease = current
        raise OperationFailedError(f"{lease_id} kept changing while renewing; not renewed")

    # -- revoke -----------------------------------------------------------------------------

    def revoke(self, lease_id: str) -> RevokeOutcome:
        return self._revoke(self.get(lease_id), explicit=True)

    def revoke_prefix(self, prefix: str) -> list[RevokeOutcome]:
        """Every lease under `prefix` by whole path segments, as Vault reads it:
        `aws/creds/dev` is role dev's leases, never `dev-admin`'s or `developers'`."""
        check_prefix(prefix)
        leases = [
            lease for lease in self.list_leases(prefix) if lease.state is not LeaseState.REVOKED
        ]
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            return list(pool.map(lambda lease: self._revoke(lease, explicit=True), leases))

    def _revoke(self, lease: Lease, *, explicit: bool) -> RevokeOutcome:
        """Claim, then remove. A lost compare-and-set is never read as success: the record
        is read again and, if it is still live (a renew won the race), claimed again; if
        another revoker holds a live claim, this waits a bounded time for it to finish and
        otherwise says the lease is not revoked."""
        lease_id = lease.lease_id
        current: Lease | None = lease
        polls = int(self.settings.wait_for_other_revoker / self.settings.poll_every)
        waited = 0
        lost = 0
        while True:
            if current is None:
                return RevokeOutcome(
                    lease_id, RevokeResult.CONTENDED, "its record left the lease store"
                )
            now = self._clock.now()
            if current.state is LeaseState.REVOKED:
                return RevokeOutcome(lease_id, RevokeResult.ALREADY_REVOKED)
            if current.state is LeaseState.IRREVOCABLE and not explicit:
                return RevokeOutcome(lease_id, RevokeResult.IRREVOCABLE, current.last_error or "")
            if current.state is not LeaseState.IRREVOCABLE and not current.claimable(now):
                if waited >= polls:
                    until = current.claimed_until.isoformat() if current.claimed_until else "?"
                    return RevokeOutcome(
                        lease_id,
                        RevokeResult.IN_PROGRESS,
                        f"another revoker claimed it until {until} and has not finished; "
                        f"{current.principal} may still exist: run the revoke again later",
                    )
                waited += 1
                self._sleep(self.settings.poll_every.total_seconds())
                current = self._store.get(lease_id)
                continue
            claimed = self._store.replace(
                current,
                replace(
                    current,
                    state=LeaseState.REVOKING,
                    claimed_until=now + self.settings.claim_for,
                    attempts=current.attempts + 1,
                    updated=now,
                ),
            )
            if claimed is not None:
                return self._revoke_claimed(claimed)
            lost += 1
            current = self._store.get(lease_id)
            live = current is not None and current.state is not LeaseState.REVOKED
            if lost >= self.settings.claim_attempts and current is not None and live:
                return RevokeOutcome(
                    lease_id,
                    RevokeResult.CONTENDED,
                    f"it changed {lost} times while this revoke tried to claim it "
                    f"(renewed meanwhile?); it is still {current.state.value} and "
                    f"{current.principal} still exists: run the revoke again",
                )

    def _revoke_claimed(self, claimed: Lease) -> RevokeOutcome:
        self._checkpoint("revoke_claimed")
        detail = ""
        if claimed.kind.is_sts:
            detail = (
                f"STS credentials cannot be revoked early; they stop working at "
                f"{claimed.expires.isoformat()}"
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
            # Only a revoker that took over our claim (it outlived claim_for) can change a
            # REVOKING record; the user is gone either way.
            return self._lost_race(claimed.lease_id)
        self._checkpoint("revoked")
        return RevokeOutcome(claimed.lease_id, RevokeResult.REVOKED, detail)

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
        return RevokeOutcome(
            lease_id,
            RevokeResult.IN_PROGRESS,
            "the user was removed, but another revoker took the lease over before it was "
            "marked revoked",
        )

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
            elif lease.state is LeaseState.PENDING:
                if now - lease.issued >= margin:
                    due.append(lease)  # an issue that crashed (or is very slow: it checks)
                else:
                    report.held_back.append(
                        f"{lease.lease_id}: issue of {lease.principal} started "
                        f"{format_duration(now - lease.issued)} ago, inside the "
                        f"{format_duration(margin)} tidy margin (a `creds` may still be "
                        f"running); revoked by a tidy after {_when(lease.issued + margin)}"
                    )
            elif lease.state is LeaseState.REVOKING:
                if lease.claimable(now):
                    due.append(lease)  # a revoke that failed or died part-way
                else:
                    until = lease.claimed_until or now
                    report.held_back.append(
                        f"{lease.lease_id}: another revoker holds it until {_when(until)}"
                    )
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
        """Users left behind by an issue that lost its race with tidy: the lease record is
        REVOKED but the user exists. The tags only *find* candidates (ListUsers from "/"
        covers every role's user_path; the name prefix keeps ListUserTags to few users);
        what proves a user is keyturn's is this store's own record naming exactly that
        user, and the exact structure of its role's username template."""
        mine = self.store_id()
        now = self._clock.now()
        for user in self._iam.managed_users(["/"], self.settings.username_prefix):
            if user.store != mine:
                continue  # another keyturn installation's user: never ours to remove
            lease = self._owning_lease(user, report)
            if lease is None:
                continue
            if lease.state is not LeaseState.REVOKED:
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

    def _owning_lease(self, user: ManagedUser, report: TidyReport) -> Lease | None:
        """This store's lease record for `user`, only if it proves the user is keyturn's;
        otherwise None, with one line in `report.not_ours` saying why."""
        claimed = user.lease_id
        try:
            parse_lease_id(claimed)
        except BadInputError:
            return self._not_ours(report, user, f"its lease tag {claimed!r} is not a lease id")
        lease = self._store.get(claimed)
        if lease is None:
            return self._not_ours(
                report, user, f"its tags name lease {claimed}, which this store has no record of"
            )
        if lease.kind is not CredentialType.IAM_USER:
            return self._not_ours(
                report, user, f"its tags name {claimed}, a {lease.kind.value} lease with no user"
            )
        if lease.principal != user.name:
            return self._not_ours(
                report,
                user,
                f"its tags name {claimed}, whose user is {lease.principal} (tags copied from "
                "another user?)",
            )
        role = self._config_roles.get(lease.role) or self._store.get_role(lease.role)
        template = role.template if role is not None else DEFAULT_USER_TEMPLATE
        if not username_pattern(template, self.settings.username_prefix, lease.role).match(
            user.name
        ):
            return self._not_ours(
                report,
                user,
                f"its name lacks the structure of role {lease.role}'s username template {template}",
            )
        return lease

    @staticmethod
    def _not_ours(report: TidyReport, user: ManagedUser, why: str) -> None:
        report.not_ours.append(
            f"user {user.name} carries keyturn's lease tags but is not provably keyturn's: "
            f"{why}; left untouched"
        )
        return None


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")
