"""Enrollment: which users the schedule may rotate, and the first rotation that makes one.

A scheduled rotation is safe only for a user whose consumers read the store; keyturn cannot
observe that, so an operator states it once with `keyturn enroll USER`. Because the user's
current secret cannot be read back from IAM, enrolling normally *is* the first rotation:
a new key goes to the store and the old key stays active for a hold period
(`rotate.enroll_hold_days`), long enough to point the consumers at the store. If the store
already serves a working, active key of the user (a user keyturn rotated before enrollment
existed), enrolling only records the fact, after verifying that key authenticates.

The record is written last, so a crash anywhere leaves the user not enrolled (the safe
side) with a resumable rotation; running `enroll` again finishes both (invariant 6).

Inputs and who can write them: the user names (the operator's command line, or the
schedule's own audit); the enrollment tag (anyone with iam:TagUser: believed only when its
seal verifies, keyturn.adapters.iam_enrollment); the store entry (its writers: used only to
skip the first rotation, and only when its secret authenticates as the user).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from keyturn.domain.enrollment import Enrollment, Generation, GenerationView
from keyturn.domain.errors import KeyturnError, OperationFailedError
from keyturn.domain.trust import Rejected
from keyturn.ports import Clock, KeyManager, KeyVerifier, SecretStore
from keyturn.services.rotate import Outcome, RotationService


class EnrollmentRegistry(Protocol):
    """Where enrollments live (keyturn.adapters.iam_enrollment.IamTagEnrollments)."""

    def read(self, user: str) -> Enrollment | Rejected | None: ...

    def check(
        self, user: str, value: str, generation: GenerationView | None = None
    ) -> Enrollment | Rejected: ...

    def write(self, enrollment: Enrollment) -> None: ...

    def remove(self, user: str) -> None: ...

    def location(self, user: str) -> str: ...

    @property
    def store_kind(self) -> str: ...

    def tagged(self) -> dict[str, str | None]: ...

    def generation(self, tagged: Mapping[str, str | None] | None = None) -> GenerationView: ...

    def raise_generation(self, view: GenerationView) -> Generation: ...

    def reseal(self, enrollment: Enrollment, at: Generation, expected: str) -> bool: ...


@dataclass
class EnrollOutcome:
    user: str
    ok: bool
    action: str  # enrolled | already enrolled | would ... | failed
    location: str
    message: str
    warnings: list[str] = field(default_factory=list)
    rotation: Outcome | None = None


@dataclass
class Partition:
    """Users split by enrollment: who the schedule may rotate, and who it must only report."""

    enrolled: list[str] = field(default_factory=list)
    not_enrolled: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # no such IAM user (also not enrolled)


# An unenroll that finds the generation raised again by a concurrent one starts over.
RAISE_ATTEMPTS = 3


class EnrollmentService:
    def __init__(
        self,
        rotation: RotationService,
        registry: EnrollmentRegistry,
        keys: KeyManager,
        store: SecretStore,
        verifier: KeyVerifier,
        clock: Clock,
        hold: timedelta,
        *,
        checkpoint: Callable[[str, str], None] | None = None,
    ) -> None:
        self._rotation = rotation
        self._registry = registry
        self._keys = keys
        self._store = store
        self._verifier = verifier
        self._clock = clock
        self._hold = hold
        self._checkpoint = checkpoint or (lambda step, user: None)

    def partition(self, users: Iterable[str]) -> Partition:
        """Split `users`: one IAM pass for every user's tag, one read of the account's
        enrollment generation, then a seal check per tag."""
        wanted = list(dict.fromkeys(users))
        if not wanted:
            return Partition()
        tagged = self._registry.tagged()
        generation = self._registry.generation(tagged)
        found = Partition()
        for user in wanted:
            if user not in tagged:
                found.unknown.append(user)
            value = tagged.get(user)
            if value is None:
                found.not_enrolled.append(user)
                continue
            checked = self._registry.check(user, value, generation)
            if isinstance(checked, Rejected):
                found.rejected.append(checked)
                found.not_enrolled.append(user)
            else:
                found.enrolled.append(user)
        return found

    def is_enrolled(self, user: str) -> Enrollment | Rejected | None:
        return self._registry.read(user)

    def plan(self, user: str) -> EnrollOutcome:
        """What `enroll` would do (the dry run); reads only."""
        where = self._registry.location(user)
        status = self._registry.read(user)
        if isinstance(status, Enrollment):
            return EnrollOutcome(user, True, "already enrolled", where, "nothing to do")
        notes = [status.line()] if isinstance(status, Rejected) else []
        serving = self._served_active_key(user)
        if serving is not None:
            return EnrollOutcome(
                user,
                True,
                "would record",
                where,
                f"the store already serves active key {serving}: verify it, record enrollment",
                notes,
            )
        planned = self._rotation.plan(user)
        return EnrollOutcome(
            user,
            True,
            "would rotate",
            where,
            f"{planned.action}: new key into {where}; old key {planned.old_key_id} stays "
            f"active for {_days(self._hold)}",
            notes,
        )

    def enroll(self, user: str) -> EnrollOutcome:
        where = self._registry.location(user)
        try:
            status = self._registry.read(user)
            if isinstance(status, Enrollment):
                return EnrollOutcome(user, True, "already enrolled", where, "nothing to do")
            notes = [status.line()] if isinstance(status, Rejected) else []
            rotation: Outcome | None = None
            serving = self._served_active_key(user)
            if serving is not None:
                secret = self._store.read_current(user)
                if secret is None or secret.access_key_id != serving:
                    raise OperationFailedError(f"{where} changed while enrolling {user}")
                self._verifier.verify(user, secret)  # consumers reading it get a working key
                message = f"store already serves active key {serving} (verified)"
            else:
                rotation = self._rotation.start_or_continue(user, hold=self._hold)
                if not rotation.ok:
                    raise OperationFailedError(rotation.message)
                notes += rotation.warnings
                if self._served_active_key(user) is None:
                    raise OperationFailedError(
                        f"the first rotation of {user} did not finish ({rotation.state}); "
                        f"run `keyturn enroll {user}` again"
                    )
                message = (
                    f"new key {rotation.new_key_id} stored; old key {rotation.old_key_id} stays "
                    f"active for {_days(self._hold)}: point consumers at {where} now"
                )
            self._registry.write(
                Enrollment(user, self._registry.store_kind, where, self._clock.now())
            )
            self._checkpoint("enrolled", user)
            if not isinstance(self._registry.read(user), Enrollment):
                # An unenroll raised the generation while this ran: the record is stale
                # (fail safe: the schedule will not rotate the user). Say so.
                raise OperationFailedError(
                    f"an unenroll ran at the same time, so the enrollment of {user} is not "
                    f"in force: run `keyturn enroll {user}` again"
                )
            return EnrollOutcome(user, True, "enrolled", where, message, notes, rotation)
        except KeyturnError as exc:
            return EnrollOutcome(user, False, "failed", where, str(exc))

    def unenroll(self, user: str) -> EnrollOutcome:
        """Stop scheduled rotation; keys and store stay as they are.

        Removing the tag is not enough: a tag-writer who saved the sealed value could put
        it back. So the account's enrollment generation is raised, which makes every record
        sealed before stale, and the records of the users still enrolled are re-sealed at
        the new one (each verified first). Order: the tag goes first (so even a failure
        later has stopped the user), then the raise, then the re-seals; a crash between
        them leaves some users stale: not rotated, reported, back with `keyturn enroll`.
        """
        where = self._registry.location(user)
        enrolled_before: set[str] | None = None
        try:
            for _attempt in range(RAISE_ATTEMPTS):
                new, listed, resealed = self._revoke_saved_copies(user)
                enrolled_before = listed if enrolled_before is None else enrolled_before
                if self._registry.generation().current == new:
                    break
                # Another unenroll raised it after us: our re-seals are stale under its
                # generation and its re-seals may have skipped users we changed. Again.
            else:
                raise OperationFailedError(
                    f"the tag of {user} is removed, but other unenrolls kept raising the "
                    "enrollment generation; run `keyturn unenroll` again"
                )
        except KeyturnError as exc:
            return EnrollOutcome(user, False, "failed", where, str(exc))
        # Fail safe, but say so: a user enrolled before this unenroll whose record was not
        # re-sealed (a concurrent unenroll or enroll changed it) is no longer rotated.
        warnings = [
            f"{other}: enrolled before this unenroll but not re-sealed (a concurrent "
            f"unenroll or enroll changed it); run `keyturn enroll {other}` if it should "
            "stay enrolled"
            for other in sorted((enrolled_before or set()) - resealed)
        ]
        return EnrollOutcome(
            user,
            True,
            "unenrolled",
            where,
            f"scheduled rotation stopped (enrollment generation {new.number}: saved copies "
            "of earlier records enroll nobody); keys and store unchanged",
            warnings,
        )

    def _revoke_saved_copies(self, user: str) -> tuple[Generation, set[str], set[str]]:
        """Raise the generation; re-seal everyone else enrolled before it. Returns the new
        generation, who was enrolled when listed, and whose record was re-sealed (a record
        that changed between listing and re-sealing is left alone: stale, fail safe)."""
        self._registry.remove(user)  # first (and again on a retry: idempotent)
        tagged = self._registry.tagged()
        view = self._registry.generation(tagged)
        keep: list[tuple[Enrollment, str]] = []
        if view.problem is None:  # a lowered or planted generation: nobody is re-sealed
            for other, value in tagged.items():
                if other == user or value is None:
                    continue
                checked = self._registry.check(other, value, view)
                if isinstance(checked, Enrollment):
                    keep.append((checked, value))
        new = self._registry.raise_generation(view)
        resealed = {e.user for e, value in keep if self._registry.reseal(e, new, value)}
        return new, {e.user for e, _ in keep}, resealed

    def _served_active_key(self, user: str) -> str | None:
        """The key id the store serves as current, if it is one of the user's active keys."""
        current = self._store.key_id(user, "current")
        if current is None:
            return None
        active = {key.key_id for key in self._keys.list_keys(user) if key.active}
        return current if current in active else None


def _days(hold: timedelta) -> str:
    days = hold / timedelta(days=1)
    return f"{days:g} day{'s' if days != 1 else ''}"
