"""Rotation of IAM access keys into a secret store, one idempotent step at a time.

The order is the safety argument (DESIGN.md invariants 1-4, 6):

1. write the intent (journal) before CreateAccessKey, so a key whose secret is lost in a
   crash is recognised as ours and deleted on resume;
2. create the key and write it to the store as *pending* before anything else can fail;
   if that write fails, delete the new key: the old key was never touched;
3. verify the new key with consecutive successful STS calls;
4. promote pending to current: consumers now get a verified key;
5. only then deactivate the old key (after an optional overlap), and delete it after a
   grace period, in a later run.

Every step re-reads nothing it already knows within one run; a later run (`resume`)
derives the state from IAM + store + journal (domain.rotation.derive) and continues.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from keyturn.adapters.events import RETIRED, ROTATED, DetailType, KeyEvent
from keyturn.adapters.probe import ProbeRefusedError, ProbeRequest
from keyturn.domain.errors import BadInputError, KeyturnError, OperationFailedError
from keyturn.domain.model import KeyStatus, NewKeySecret
from keyturn.domain.retirement import Verdict, consumer, decide
from keyturn.domain.rotation import (
    CLOCK_SKEW,
    Facts,
    IamKey,
    OldKey,
    RotationRecord,
    RotationState,
    Step,
    StoreView,
    Timing,
    Unpublished,
    advance,
    begin,
    derive,
    next_step,
    orphans,
    plan_start,
    restored,
    retiring,
    rollback_refusal,
)
from keyturn.domain.trust import Rejected
from keyturn.ports import (
    Clock,
    ConsumerProbe,
    KeyManager,
    KeyVerifier,
    RotationEvents,
    RotationJournal,
    SecretStore,
)
from keyturn.services.ratelimit import RateLimiter, Unlimited

log = logging.getLogger("keyturn.rotate")

S = RotationState
# The outcome of a user whose journal entry keyturn did not seal (keyturn.domain.trust).
UNTRUSTED = "untrusted"

# Which waiting IAM call gets the next rate-limiter token (lower first). IAM's rate is the
# budget of a large rotation, and each user then waits ~10 s for its new key to propagate:
# the run ends one propagation (+ verification) after the *last* CreateAccessKey. Served
# first come first served, the start of each user (ListAccessKeys, TagUser, CreateAccessKey)
# interleaves with the retirements of earlier users, and the last key is created only near
# the end of the IAM budget: measured (bench_rotate, 200 users at 20 IAM calls/s), the last
# CreateAccessKey came at 42 s of a 41 s budget and the run took 57 s. So the call that
# starts a propagation clock goes first, then the calls that lead to it, then everything
# else, and retiring old keys (work no one waits on: the new key is already current) last.
CREATE, START, READ, RETIRE = 0, 1, 2, 3
Checkpoint = Callable[[str, str], None]
# Each consumers' event by the journal letter that says it is owed, and the state it names.
OWED: dict[Unpublished, tuple[DetailType, RotationState]] = {
    Unpublished.ROTATED: (ROTATED, RotationState.PROMOTED),
    Unpublished.RETIRED: (RETIRED, RotationState.OLD_DEACTIVATED),
}


def _no_checkpoint(step: str, user: str) -> None:
    return None


@dataclass
class Outcome:
    """What happened to one user. `secret` is set only when the caller asked to see it."""

    user: str
    ok: bool
    state: str
    old_key_id: str | None = None
    new_key_id: str | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    secret: NewKeySecret | None = field(default=None, repr=False)
    # retire = "when-quiet": the old key stays, `message` says which consumer still uses it
    waiting: bool = False
    # Consumers' events still owed after this run (marked in the journal, retried next run)
    unpublished: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedRotation:
    user: str
    action: str
    old_key_id: str | None
    retire_first: str | None
    location: str


class RotationService:
    def __init__(
        self,
        keys: KeyManager,
        store: SecretStore,
        journal: RotationJournal,
        verifier: KeyVerifier,
        clock: Clock,
        timing: Timing,
        *,
        limiter: RateLimiter | Unlimited | None = None,
        checkpoint: Checkpoint = _no_checkpoint,
        new_token: Callable[[], str] = lambda: str(uuid.uuid4()),
        keep_secret: bool = False,
        events: RotationEvents | None = None,
        quarantined: Callable[[str, str], str | None] | None = None,
        probe: ConsumerProbe | None = None,
    ) -> None:
        self._iam = keys
        self._store = store
        self._journal = journal
        self._verifier = verifier
        self._clock = clock
        self._timing = timing
        self._limiter = limiter or Unlimited()
        self._checkpoint = checkpoint
        self._new_token = new_token
        self._keep_secret = keep_secret
        self._events = events
        # (user, key id) -> why the key may never be active again (a sealed incident record,
        # keyturn.services.quarantine), or None. Rollback asks before reactivating.
        self._quarantined = quarantined
        self._probe = probe
        self._rejected: dict[str, Rejected] = {}

    # -- public operations ---------------------------------------------------------------

    def plan(self, user: str) -> PlannedRotation:
        """What `rotate` would do, read-only (the dry run)."""
        keys, view, record = self._read(user)
        derived = derive(Facts(record, tuple(keys), view), self._clock.now()) if record else None
        if derived is not None and self._in_progress(derived):
            step = next_step(derived, self._clock.now(), self._timing)
            return PlannedRotation(
                user,
                f"resume ({derived.state} -> {step})",
                derived.old_key_id,
                None,
                self._store.location(user),
            )
        start = plan_start(user, keys, self._protected(user, keys, view))
        return PlannedRotation(
            user, "rotate", start.old_key_id, start.retire_first, self._store.location(user)
        )

    def rotate(
        self,
        user: str,
        *,
        only_if_older_than: timedelta | None = None,
        hold: timedelta | None = None,
    ) -> Outcome:
        """Start a new rotation for `user` and run it as far as it can go now.

        `only_if_older_than` (for --due and the scheduled Lambda, whose credential report
        may be hours old) skips a user whose active keys are all younger than that. `hold`
        keeps the old key active at least that long (an enrollment's first rotation).
        """
        return self._start(user, self._new_token(), None, only_if_older_than, hold=hold)

    def start_or_continue(self, user: str, *, hold: timedelta | None = None) -> Outcome:
        """Finish the user's rotation in progress, else start one (an enrollment's first
        rotation: a rerun after a crash continues it rather than refusing)."""
        keys, view, record = self._read(user)
        if record is not None:
            derived = derive(Facts(record, tuple(keys), view), self._clock.now())
            if derived is not None and self._in_progress(derived):
                return self._run(derived, keys, view)
        return self._start(
            user, self._new_token(), None, None, facts=(keys, view, record), hold=hold
        )

    def prepare(self, user: str, token: str) -> Outcome:
        """Secrets Manager's createSecret: intent, create, store as pending under `token`.

        Idempotent under Lambda retries: a second call with the same token finds its own
        intent (deleting an orphan from a crashed first try) or its pending version.
        """
        keys, view = self._facts(user)
        record = self._journal_read(user)
        if record is not None and record.token == token:
            derived = derive(Facts(record, tuple(keys), view), self._clock.now())
            assert derived is not None
            if derived.state in (S.INTENT, S.CREATED):
                return self._run(derived, keys, view, until=S.STORED_PENDING)
            if derived.new_key_id is None and derived.state is S.STORED_PENDING:
                derived = replace(derived, new_key_id=self._store.key_id(user, "pending"))
            return self._outcome(derived, Step.DONE, None, [])
        return self._start(user, token, S.STORED_PENDING, None, facts=(keys, view, record))

    def verify_pending(self, user: str, token: str) -> None:
        """Secrets Manager's testSecret: the pending key of `token` authenticates."""
        secret = self._store.read_pending(user, token)
        if secret is None:
            raise OperationFailedError(
                f"{self._store.location(user)}: no pending version {token} to test"
            )
        self._verifier.verify(user, secret)

    def finish(self, user: str, token: str) -> Outcome:
        """Secrets Manager's finishSecret: promote `token`, then retire the old key.

        Only a version keyturn created and recorded (a sealed intent with this token) is
        promoted. Whoever may invoke the function can name any version's token, including
        the previous one, whose key keyturn has already deactivated: promoting that on the
        event's word would serve consumers a dead key.
        """
        record = self._journal_read(user)
        if record is None or record.token != token:
            view = self._store.describe(user)
            if view.current is not None and view.current.token == token:
                return Outcome(user, True, S.PROMOTED, message=f"{token} is already current")
            raise OperationFailedError(
                f"{user}: no keyturn rotation with token {token} is recorded: not promoting "
                f"a version of {self._store.location(user)} keyturn did not create and verify"
            )
        keys, view = self._facts(user)
        derived = derive(Facts(record, tuple(keys), view), self._clock.now())
        assert derived is not None
        if derived.new_key_id is None and derived.state not in (S.INTENT, S.CREATED):
            stage = "pending" if derived.state is S.STORED_PENDING else "current"
            derived = replace(derived, new_key_id=self._store.key_id(user, stage))
        return self._run(derived, keys, view)

    def _start(
        self,
        user: str,
        token: str,
        until: RotationState | None,
        only_if_older_than: timedelta | None,
        *,
        facts: tuple[list[IamKey], StoreView, RotationRecord | None] | None = None,
        hold: timedelta | None = None,
    ) -> Outcome:
        keys, view, record = facts or self._read(user)
        now = self._clock.now()
        if only_if_older_than is not None:
            active = [key for key in keys if key.active]
            if active and all(now - key.created < only_if_older_than for key in active):
                return Outcome(user, True, "skipped", message="active key is not due yet")
        if record is not None:
            derived = derive(Facts(record, tuple(keys), view), now)
            if derived is not None and self._in_progress(derived):
                raise OperationFailedError(
                    f"a rotation of {user} is already in progress ({derived.state}); "
                    f"finish it with `keyturn rotate --resume {user}` or undo it with "
                    f"`--rollback {user}`"
                )
        start = plan_start(user, keys, self._protected(user, keys, view))
        if start.retire_first is not None:
            self._iam_call(START)
            self._iam.delete_key(user, start.retire_first)
            log.info("%s: retired inactive key %s to make room", user, start.retire_first)
            self._checkpoint("retire", user)
            keys = [key for key in keys if key.key_id != start.retire_first]
        record = begin(user, token, keys, start.old_key_id, now, hold=hold)
        self._iam_call(START)
        self._journal.write(record)
        self._checkpoint("intent", user)
        return self._run(record, keys, view, until=until)

    def resume(self, user: str) -> Outcome | None:
        """Continue the user's latest rotation from wherever it stopped; None if none.

        A journal entry keyturn did not seal is reported (an "untrusted" outcome) and
        nothing is done on its word: no orphan deleted, no old key retired.
        """
        record = self._journal_read(user)
        if record is None:
            rejected = self._rejected.get(user)
            if rejected is None:
                return None
            return Outcome(user, True, UNTRUSTED, message=rejected.line())
        keys, view = self._facts(user)
        facts = Facts(record, tuple(keys), view)
        if restored(facts) is not None:
            # Resuming would take the restored store for a rotation never started and
            # begin a new one: the operator asked to go back, not forward.
            raise OperationFailedError(
                f"a rollback of {user} stopped after restoring {self._store.location(user)}; "
                f"finish it with `keyturn rotate --rollback {user}`"
            )
        derived = derive(facts, self._clock.now())
        if derived is None or derived.state in (S.ABORTED, S.ROLLED_BACK):
            return None
        pending = view.pending
        if pending is not None and pending.token == record.token and view.open_pending is None:
            # A promotion cut off after writing current (Vault down before the pending
            # entry's deletion) left a second copy of the current secret behind: finish it
            # (promote is idempotent: with current already ours it only deletes pending).
            self._store.promote(user, record.token)
        return self._run(derived, keys, view)

    def rollback(self, user: str) -> Outcome:
        """Undo the latest rotation while its old key exists (reactivate, restore store).

        Everything the rollback needs is checked before its first write (invariant 7), and
        running it again after a crash at any step finishes it (invariant 6).
        """
        record = self._journal_read(user)
        if record is None:
            rejected = self._rejected.get(user)
            if rejected is not None:
                raise BadInputError(f"{rejected.line()}: nothing to roll back")
            raise BadInputError(f"no rotation of {user} recorded: nothing to roll back")
        keys, view = self._facts(user)
        facts = Facts(record, tuple(keys), view)
        now = self._clock.now()
        half_done = restored(facts)
        if half_done is not None:
            return self._finish_rollback(half_done, keys)
        derived = derive(facts, now)
        assert derived is not None
        by_id = {key.key_id: key for key in keys}
        if derived.state in (S.ABORTED, S.ROLLED_BACK):
            raise BadInputError(f"the latest rotation of {user} is already {derived.state}")
        if derived.state in (S.INTENT, S.CREATED, S.STORED_PENDING, S.VERIFIED):
            # Not promoted: consumers never saw the new key. Delete it; old untouched.
            doomed = set(orphans(record, keys, view))
            if derived.state is S.STORED_PENDING and derived.new_key_id:
                doomed.add(derived.new_key_id)
            for key_id in sorted(doomed):
                self._iam_call()
                self._iam.delete_key(user, key_id)
                self._checkpoint("rollback_delete_new", user)
            self._write(advance(derived, S.ABORTED, now))
            self._checkpoint("rollback_aborted", user)
            return Outcome(
                user,
                True,
                S.ABORTED,
                derived.old_key_id,
                None,
                f"rotation abandoned; deleted {', '.join(sorted(doomed)) or 'nothing'}",
            )
        old = by_id.get(derived.old_key_id or "")
        if old is None:
            raise OperationFailedError(
                f"cannot roll back {user}: the old key {derived.old_key_id} is already deleted"
            )
        new_id = derived.new_key_id
        if not new_id:
            new_id = self._store.key_id(user, "current")
        self._refuse_unless_ours(derived, old)
        self._check_restorable(user, old.key_id, new_id)
        self._refuse_if_quarantined(user, old.key_id)
        self._iam_call()
        self._iam.set_active(user, old.key_id, True)
        self._checkpoint("rollback_reactivate", user)
        self._store.restore_previous(user, derived.token)
        self._checkpoint("rollback_restore", user)
        return self._finish_rollback(
            replace(derived, new_key_id=new_id), [*keys, replace(old, status=KeyStatus.ACTIVE)]
        )

    def _refuse_unless_ours(self, record: RotationRecord, old: IamKey) -> None:
        """Serve the old key again only if this rotation's sealed record says it was active
        when the rotation started and this rotation is what turned it off (v5): facts only
        keyturn writes, so removing the incident tag cannot re-open a quarantined key."""
        why = rollback_refusal(record, old.active)
        if why is not None:
            user = record.user
            raise OperationFailedError(
                f"cannot roll back {user}: old key {old.key_id} {why}. Nothing changed; to "
                f"replace the current key, rotate again: `keyturn rotate {user}`"
            )

    def _refuse_if_quarantined(self, user: str, key_id: str) -> None:
        """Never reactivate a key keyturn contained as exposed: the only evidence believed
        is keyturn's own sealed incident record (a forged one is no record), and the check
        comes before the rollback's first write."""
        if self._quarantined is None:
            return
        self._iam_call()
        why = self._quarantined(user, key_id)
        if why is not None:
            raise OperationFailedError(
                f"cannot roll back {user}: old key {key_id} was quarantined as exposed "
                f"({why}); it is never reactivated. Nothing changed; to replace the current "
                f"key, rotate again: `keyturn rotate {user}`"
            )

    def _check_restorable(self, user: str, old_id: str, new_id: str | None) -> None:
        """Refuse, before any write, a rollback whose restore would strand consumers.

        The restore makes the store's previous entry current. After a user's first
        rotation that entry does not hold the old key (Vault had nothing at the path;
        Secrets Manager's previous version is keyturn's key-less placeholder): restoring
        would serve consumers no working secret, and stopping halfway used to leave both
        keys active.
        """
        held = self._store.key_id(user, "previous")
        if held == old_id:
            return
        where = self._store.location(user)
        why = (
            f"old key {old_id} was never in {where} (keyturn's first rotation stored the "
            "first secret there)"
            if held is None
            else f"the previous entry of {where} holds {held}, not old key {old_id}"
        )
        raise OperationFailedError(
            f"cannot roll back {user}: {why}, so restoring it would leave consumers without a "
            f"working secret; nothing changed, verified new key {new_id} stays current. To "
            f"replace it, rotate again: `keyturn rotate {user}`"
        )

    def _finish_rollback(self, record: RotationRecord, keys: list[IamKey]) -> Outcome:
        """The rollback's steps after the store is restored: old key active, new key
        inactive, ROLLED_BACK recorded. Each step is skipped when already done, so a rerun
        after a crash anywhere in here finishes the job."""
        user, old_id, new_id = record.user, record.old_key_id, record.new_key_id
        by_id = {key.key_id: key for key in keys}
        serving = self._store.key_id(user, "current")
        old = by_id.get(old_id or "")
        if old is None or serving != old_id:
            raise OperationFailedError(
                f"cannot finish the rollback of {user}: {self._store.location(user)} serves "
                f"{serving or 'no key'}, not old key {old_id} (changed by someone else?); "
                f"new key {new_id or '(unknown)'} left as it is"
            )
        if not old.active:  # the restored entry serves it: it must work (invariant 4)
            self._refuse_unless_ours(record, old)
            self._refuse_if_quarantined(user, old.key_id)
            self._iam_call()
            self._iam.set_active(user, old.key_id, True)
            self._checkpoint("rollback_reactivate", user)
        if not new_id:
            new_id = self._store.key_id(user, "previous")
        new = by_id.get(new_id or "")
        if new is not None and new.active:
            self._iam_call()
            self._iam.set_active(user, new.key_id, False)
            self._checkpoint("rollback_deactivate_new", user)
        self._write(advance(record, S.ROLLED_BACK, self._clock.now()))
        self._checkpoint("rolled_back", user)
        gone = "deactivated" if new is not None else "already gone"
        return Outcome(
            user,
            True,
            S.ROLLED_BACK,
            old.key_id,
            new_id,
            f"{old.key_id} active and current again; {new_id or 'the new key'} {gone}",
        )

    def pending_users(self) -> list[str]:
        self._iam_call()
        return self._journal.users_with_records()

    # -- the step runner -------------------------------------------------------------------

    def _run(
        self,
        record: RotationRecord,
        keys: list[IamKey],
        view: StoreView,
        *,
        until: RotationState | None = None,
    ) -> Outcome:
        user = record.user
        secret: NewKeySecret | None = None
        warnings: list[str] = []
        if record.unpublished:
            record = self._republish(record, warnings)
        while True:
            now = self._clock.now()
            if until is not None and record.state is until:
                return self._outcome(record, Step.DONE, secret, warnings)
            step = next_step(record, now, self._timing)
            if step is Step.DELETE_ORPHAN:
                # Read every stage's key id once: `describe` may not name them, and the
                # previous one counts, since an older rotation's genuine intent put back by
                # a tag-writer would otherwise take the overlap's key for a lost one.
                held = self._held_keys(user, ("current", "pending", "previous"))
                self._refuse_if_stale(record, keys, held.get("current"))
                for key_id in orphans(record, keys, view):
                    _refuse_if_held(
                        self._store.location(user),
                        user,
                        key_id,
                        held,
                        "delete",
                        note=" (a stale or replayed journal entry?); nothing changed",
                    )
                    self._iam_call(START)
                    self._iam.delete_key(user, key_id)
                    warnings.append(
                        f"deleted {key_id}: created by an interrupted rotation, "
                        "its secret was never stored"
                    )
                keys = [key for key in keys if key.key_id in record.existing]
                record = advance(record, S.INTENT, now)
                self._checkpoint("delete_orphan", user)
            elif step is Step.CREATE:
                secret = self._create_and_store(record)
                record = advance(record, S.CREATED, now, new_key_id=secret.access_key_id)
                record = advance(record, S.STORED_PENDING, now)
            elif step is Step.VERIFY:
                if secret is None:
                    secret = self._store.read_pending(user, record.token)
                if secret is None:
                    raise OperationFailedError(
                        f"{user}: the pending entry of rotation {record.token} is gone from "
                        f"{self._store.location(user)}; roll back with --rollback {user}"
                    )
                self._verifier.verify(user, secret)
                record = advance(record, S.VERIFIED, now, new_key_id=secret.access_key_id)
                self._checkpoint("verify", user)
            elif step is Step.PROMOTE:
                if self._probe is not None:
                    self._ask_probe(record, keys, warnings)
                with _resume_hint(user):
                    self._store.promote(user, record.token)
                record = advance(record, S.PROMOTED, now)
                self._checkpoint("promote", user)
                record = self._announce(ROTATED, record, warnings)
                if self._timing.retire is not None:
                    # The quiet period and its bound count from here, across runs: seal
                    # the promotion time into the journal (a crash before this write is
                    # caught in CHECK_QUIET, which stamps a later, so safer, time).
                    self._write(record)
                    self._checkpoint("promoted", user)
            elif step is Step.CHECK_QUIET:
                record, waiting = self._check_quiet(record, warnings)
                if waiting is not None:
                    found = self._outcome(record, step, secret, warnings, message=waiting)
                    found.waiting = True
                    return found
            elif step is Step.DEACTIVATE_OLD:
                with _resume_hint(user):
                    warnings.extend(self._recent_use_warning(record))
                record = self._deactivate_old(record, now, warnings)
            elif step is Step.DELETE_OLD:
                self._delete_old(record)
                record = advance(record, S.OLD_DELETED, now)
                self._write(record)
                self._checkpoint("delete_old", user)
            else:
                return self._outcome(record, step, secret, warnings)

    def _check_quiet(
        self, record: RotationRecord, warnings: list[str]
    ) -> tuple[RotationRecord, str | None]:
        """retire = "when-quiet": one iam:GetAccessKeyLastUsed, then retire the old key (the
        record returned is OLD_DEACTIVATED), wait (the waiting line returned), or escalate
        (OperationFailedError naming the consumer; the old key stays active)."""
        policy = self._timing.retire
        user, old_id = record.user, record.old_key_id
        assert policy is not None
        assert old_id is not None
        now = self._clock.now()
        if record.promoted_at is None:
            # Promoted by a run that was cut off before recording it (or under the timer,
            # before `retire` was switched): count from now, never earlier than the truth.
            record = replace(record, promoted_at=now)
            self._write(record)
            self._checkpoint("promoted", user)
        assert record.promoted_at is not None
        self._iam_call(RETIRE)
        use = self._iam.last_used(old_id)
        decision = decide(record.promoted_at, use, now, policy)
        log.info("%s: %s", user, decision.reason)
        if decision.verdict is Verdict.WAIT:
            return record, decision.reason
        if decision.verdict is Verdict.ESCALATE:
            raise OperationFailedError(f"{user}: {decision.reason}")
        if decision.forced:
            warnings.append(decision.reason)
        return self._deactivate_old(record, now, warnings), None

    def _ask_probe(
        self, record: RotationRecord, keys: Sequence[IamKey], warnings: list[str]
    ) -> None:
        """`rotate.probe`: the consumers' own check of the verified pending key, before
        the store serves it. Anything but a clear yes stops the rotation as a store failure
        does: new key deleted, pending entry discarded, ABORTED recorded, old key untouched.
        A yes only lets the rotation go on to the promotion it was about to make.

        Not asked when the old key no longer works: inactive when this rotation started
        (the sealed journal's mark) or inactive or gone now (IAM, read at the start of this
        run). A quarantine deactivates an exposed key before it rotates, so this is its
        case; an old key someone else turned off is the same. The store then serves
        consumers a key that works for nobody: a no would keep it there and delete the one
        key that authenticates. The probe guards a switch away from a working key, and
        there is none left to protect; skipping (rather than asking and promoting anyway)
        also keeps the probe's timeout off the time consumers wait for a working key.
        Decided from facts, not from the incident tag (a tag-writer can remove that), and
        here rather than by the quarantine, so `rotate --resume` and the scheduled function
        finishing a quarantine's rotation decide the same way."""
        probe = self._probe
        user, new_id = record.user, record.new_key_id
        assert probe is not None
        assert new_id is not None
        old_id = record.old_key_id
        if old_id is not None:
            old = next((key for key in keys if key.key_id == old_id), None)
            if record.old_mark is OldKey.INACTIVE or old is None or not old.active:
                warnings.append(
                    f"consumer probe {probe.name} not asked: old key {old_id} is inactive, "
                    "so no consumer can be using it; the verified new key is promoted so "
                    "consumers have a working key"
                )
                log.info("%s: probe skipped, old key %s inactive", user, old_id)
                return
        request = ProbeRequest(user, new_id, record.old_key_id, self._store.location(user))
        try:
            probe.check(request)
        except KeyturnError as exc:
            log.warning("%s: %s", user, exc)
            cleanup = self._abort_before_promotion(record, new_id)
            raise ProbeRefusedError(
                f"{user}: rotation stopped before promotion: {exc}; {cleanup}, old key "
                f"{record.old_key_id} untouched and still current"
            ) from None
        self._checkpoint("probe", user)

    def _abort_before_promotion(self, record: RotationRecord, new_id: str) -> str:
        """Discard the unpromoted pending entry, delete its key, record ABORTED; says what
        was done. A step that fails is left to `--rollback` (said so), never raised over
        the reason the rotation stopped.

        In that order: cut off after the discard, a resume finds the new key in no store
        entry, created just after the intent, so deletes it as the orphan it is (and starts
        over, asking the probe again); cut off after the key's deletion, nothing is left
        but the ABORTED record. Deleting first would leave a pending entry whose key no
        longer works, which a resume would try to verify."""
        user = record.user
        try:
            self._store.discard_pending(user, record.token)
            self._checkpoint("abort_discard", user)
            self._iam_call()
            self._iam.delete_key(user, new_id)
            self._checkpoint("abort_delete_new", user)
            self._write(advance(record, S.ABORTED, self._clock.now()))
            self._checkpoint("aborted", user)
        except KeyturnError as exc:
            return f"cleanup incomplete ({exc}): finish it with `keyturn rotate --rollback {user}`"
        return f"new key {new_id} deleted, pending entry discarded"

    def _event(self, kind: DetailType, record: RotationRecord, state: RotationState) -> KeyEvent:
        return KeyEvent(
            kind,
            record.user,
            record.old_key_id,
            record.new_key_id,
            self._store.location(record.user),
            str(state),
        )

    def _announce(
        self, kind: DetailType, record: RotationRecord, warnings: list[str]
    ) -> RotationRecord:
        """Put the consumers' event on the bus, when one is configured. A failure is a
        warning in this user's outcome, never a failed rotation (the keys and the store are
        already right, and a consumer can still read the store), and is marked in the
        sealed journal record, so the next run that reads it publishes it (`_republish`)."""
        if self._events is None:
            return record
        try:
            self._events.publish(self._event(kind, record, record.state))
        except KeyturnError as exc:
            log.warning("%s: event %r not published: %s", record.user, kind, exc)
            owed = next(letter for letter, (name, _) in OWED.items() if name == kind)
            marked = replace(record, unpublished=(*record.unpublished, owed))
            note = "marked in the journal; the next run retries it"
            try:
                self._write(marked)
            except KeyturnError as failed:
                marked, note = record, f"and NOT marked in the journal ({failed})"
            warnings.append(
                f"event {kind!r} not published on bus {self._events.bus}: {exc}; {note}"
            )
            return marked
        return record

    def _republish(self, record: RotationRecord, warnings: list[str]) -> RotationRecord:
        """Publish the events an earlier run could not (its journal mark), oldest first;
        clear the mark of each one published. Only a promoted rotation's events are owed:
        one stopped or rolled back since has nothing true left to announce."""
        if self._events is None or record.state not in (
            S.PROMOTED,
            S.OLD_DEACTIVATED,
            S.OLD_DELETED,
        ):
            return record
        still: list[Unpublished] = []
        for owed in record.unpublished:
            kind, state = OWED[owed]
            try:
                self._events.publish(self._event(kind, record, state))
            except KeyturnError as exc:
                still.append(owed)
                warnings.append(
                    f"event {kind!r} still not published on bus {self._events.bus}: {exc}; "
                    "the next run retries it"
                )
            else:
                warnings.append(f"event {kind!r} published on retry (an earlier run failed)")
        if len(still) == len(record.unpublished):
            return record
        cleared = replace(record, unpublished=tuple(still))
        try:
            self._write(cleared)
        except KeyturnError as exc:  # published again next run: a duplicate, never a loss
            warnings.append(f"published events not cleared from the journal ({exc})")
            return record
        return cleared

    def _create_and_store(self, record: RotationRecord) -> NewKeySecret:
        user = record.user
        self._iam_call(CREATE)
        secret = self._iam.create_key(user)
        log.info("%s: created %s (rotation %s)", user, secret.access_key_id, record.token)
        self._checkpoint("create", user)
        try:
            self._store.put_pending(user, secret, record.token)
        except KeyturnError as exc:
            # The new key's secret exists only in this process: keep no key we cannot
            # hand to anyone. The old key was never touched.
            cleanup = "deleted"
            try:
                self._iam_call()
                self._iam.delete_key(user, secret.access_key_id)
                self._write(advance(record, S.ABORTED, self._clock.now()))
            except KeyturnError:
                cleanup = "NOT deleted (it will be deleted on --resume)"
            raise OperationFailedError(
                f"{user}: storing the new key in {self._store.location(user)} failed "
                f"({exc}); new key {secret.access_key_id} {cleanup}, old key "
                f"{record.old_key_id} still active"
            ) from exc
        self._checkpoint("store", user)
        return secret

    def _deactivate_old(
        self, record: RotationRecord, now: datetime, warnings: list[str]
    ) -> RotationRecord:
        """Retire the replaced key (timer or when-quiet), never one the store serves."""
        user, old = record.user, record.old_key_id
        assert old is not None
        with _resume_hint(user):
            self._refuse_if_served(user, old, "deactivate")
            marked = retiring(record)
            if marked != record:
                # Written ahead: a later rollback reactivates the old key only on this mark,
                # so a key someone else turned off (a quarantine) is never turned back on.
                self._write(marked)
                record = marked
            self._iam_call(RETIRE)
            self._iam.set_active(user, old, False)
        record = advance(record, S.OLD_DEACTIVATED, now)
        self._checkpoint("deactivate", user)
        return self._announce(RETIRED, record, warnings)

    def _held_keys(self, user: str, stages: tuple[str, ...]) -> dict[str, str | None]:
        """The key id each store stage holds, read now (no IAM call)."""
        return {stage: self._store.key_id(user, stage) for stage in stages}

    def _refuse_if_served(self, user: str, key_id: str, verb: str) -> None:
        """The last check before a key is retired, on facts read now: never the key the
        store serves as current or holds as pending, whatever any record says (DESIGN
        invariant 8). Costs one or two store reads per retirement, no IAM call."""
        held = self._held_keys(user, ("current", "pending"))
        _refuse_if_held(self._store.location(user), user, key_id, held, verb)

    def _refuse_if_stale(
        self, record: RotationRecord, keys: list[IamKey], current: str | None
    ) -> None:
        """An intent older than the key the store serves is not the latest rotation's: a
        later rotation stored a key after it, so a crash of this one cannot have left a
        lost key behind. A genuine (sealed) old intent put back by a tag-writer is exactly
        that shape, and must never turn the previous rotation's key into an "orphan"."""
        served = next((key for key in keys if key.key_id == current), None)
        if served is not None and served.created > record.intent_at + CLOCK_SKEW:
            raise OperationFailedError(
                f"{record.user}: the journal's intent ({record.intent_at:%Y-%m-%d %H:%M} UTC) "
                f"is older than the key {self._store.location(record.user)} serves "
                f"({served.key_id}): a stale or replayed entry; not deleting anything as lost"
            )

    def _delete_old(self, record: RotationRecord) -> None:
        """Delete the replaced key, but never one a store entry still serves."""
        user, old = record.user, record.old_key_id
        assert old is not None
        self._refuse_if_served(user, old, "delete")
        self._iam_call(RETIRE)
        self._iam.delete_key(user, old)

    def _recent_use_warning(self, record: RotationRecord) -> list[str]:
        """With an overlap, say if consumers still used the old key after promotion."""
        if self._timing.overlap <= timedelta(0) or record.old_key_id is None:
            return []
        self._iam_call(RETIRE)
        use = self._iam.last_used(record.old_key_id)
        if use is not None and use.date >= record.intent_at:
            return [
                f"old key {record.old_key_id} was still used at {use.date:%Y-%m-%d %H:%M} UTC "
                f"(by {consumer(use)}), "
                "after the new key was stored; a consumer may not have picked it up"
            ]
        return []

    def _outcome(
        self,
        record: RotationRecord,
        step: Step,
        secret: NewKeySecret | None,
        warnings: list[str],
        *,
        message: str | None = None,
    ) -> Outcome:
        notes = {
            Step.WAIT_OVERLAP: "new key current; old key stays active until the overlap ends",
            Step.WAIT_GRACE: "old key deactivated; deleted after the grace period",
            Step.DONE: "done",
        }
        rejected = self._rejected.get(record.user)
        if rejected is not None:
            warnings = [*warnings, rejected.line()]
        return Outcome(
            user=record.user,
            ok=True,
            state=record.state,
            old_key_id=record.old_key_id,
            new_key_id=record.new_key_id,
            message=message or notes.get(step, str(step)),
            warnings=warnings,
            secret=secret if self._keep_secret else None,
            unpublished=[OWED[owed][0] for owed in record.unpublished],
        )

    # -- reading facts -------------------------------------------------------------------

    def _read(self, user: str) -> tuple[list[IamKey], StoreView, RotationRecord | None]:
        keys, view = self._facts(user)
        record = None
        # The journal matters only when something may be half-done: a second key exists
        # (an orphan, or an old key not yet retired) or the store holds an open pending
        # entry. Reading it lazily keeps a plain rotation to 7 AWS calls.
        if len(keys) >= 2 or view.open_pending is not None:
            record = self._journal_read(user)
        return keys, view, record

    def _journal_read(self, user: str) -> RotationRecord | None:
        """The journal's record if keyturn sealed it; a rejected one is remembered (to be
        reported once, in this user's outcome) and treated as no record at all."""
        self._iam_call()
        found = self._journal.read(user)
        if isinstance(found, Rejected):
            if user not in self._rejected:
                log.warning("%s", found.line())
            self._rejected[user] = found
            return None
        return found

    def rejections(self) -> list[Rejected]:
        """Every journal entry this service refused to act on, one per user."""
        return list(self._rejected.values())

    def _facts(self, user: str) -> tuple[list[IamKey], StoreView]:
        self._iam_call()
        keys = self._iam.list_keys(user)
        view = self._store.describe(user)
        return keys, view

    def _protected(self, user: str, keys: list[IamKey], view: StoreView) -> set[str]:
        """Key ids the store serves as current or pending: never retired to make room."""
        if len(keys) < 2:
            return set()
        found: set[str] = set()
        for stage, entry in (("current", view.current), ("pending", view.open_pending)):
            if entry is None:
                continue
            key_id = entry.key_id
            if key_id is None:
                key_id = self._store.key_id(user, stage)
            if key_id:
                found.add(key_id)
        return found

    def _in_progress(self, record: RotationRecord) -> bool:
        """Half-done and not merely waiting for the grace period to delete the old key."""
        if record.state.terminal or record.state is S.OLD_DEACTIVATED:
            return False
        return record.state is not S.INTENT

    def _write(self, record: RotationRecord) -> None:
        self._iam_call(RETIRE)
        self._journal.write(record)

    def _iam_call(self, priority: int = READ) -> None:
        """Take a token before each IAM request (journal writes are IAM tag writes).

        `priority`: CREATE, START, READ or RETIRE (see there). Call it just before *every*
        IAM call: on the run's shared pacer it sets the priority of this thread's next IAM
        call only (a call without one waits at the default), and with pacing off it takes
        the call's token (tests/integration/test_rotate_priorities.py checks both).

        Only IAM is gated: its control-plane rate is the account-wide limit a large rotation
        runs into (it is not published; `rotate.rate` is the share this run may use). The
        store (Secrets Manager, Vault) and STS verification have far higher limits, and
        spending IAM's budget on them would slow the run for nothing.
        """
        self._limiter.acquire(priority)


def _refuse_if_held(
    where: str,
    user: str,
    key_id: str,
    held: dict[str, str | None],
    verb: str,
    *,
    note: str = "",
) -> None:
    """Refuse to `verb` a key that one of the `held` store stages holds."""
    for stage, found in held.items():
        if found == key_id:
            raise OperationFailedError(
                f"{user}: not going to {verb} {key_id}: {where} holds it as the {stage} key" + note
            )


@contextmanager
def _resume_hint(user: str) -> Iterator[None]:
    """Say how to finish a rotation that failed once promotion had started.

    From there a plain rerun refuses (a rotation is in progress), so the failure line is
    where the operator learns the next command. The error keeps its class (and so its exit
    code); only its text grows.
    """
    try:
        yield
    except KeyturnError as exc:
        exc.args = (
            f"{exc}; the new key is verified and the rotation half-done: once that is fixed, "
            f"finish it with `keyturn rotate --resume {user}`",
        )
        raise


# -- many users at once ---------------------------------------------------------------------


def run_many(
    users: Iterable[str],
    action: Callable[[str], Outcome | None],
    *,
    workers: int,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run `action` for each user with bounded concurrency; a failure is an Outcome."""

    def guarded(user: str) -> Outcome | None:
        try:
            return action(user)
        except KeyturnError as exc:
            return Outcome(user=user, ok=False, state="failed", message=str(exc))

    unique = list(dict.fromkeys(users))
    results: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(guarded, user): user for user in unique}
        for future in as_completed(futures):
            outcome = future.result()
            if outcome is None:
                continue
            results.append(outcome)
            if on_done is not None:
                on_done(outcome)
    order = {user: index for index, user in enumerate(unique)}
    return sorted(results, key=lambda outcome: order.get(outcome.user, 0))
