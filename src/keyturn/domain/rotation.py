"""Rotation as a resumable state machine: pure, no I/O, the clock passed in.

INTENT -> CREATED -> STORED_PENDING -> VERIFIED -> PROMOTED -> OLD_DEACTIVATED -> OLD_DELETED

Only the INTENT is written ahead (to the journal) before CreateAccessKey; every later state
is *derived* from what IAM and the store say, because those are the facts a crash cannot
make lie. A journal that claimed "promoted" while the store did not would be worse than
none. So `derive()` turns (journal record, IAM keys, store view) into the true state, and
`next_step()` turns that state into the one idempotent step to run next.

The record never holds a secret (invariant 5): key ids, a token, times, a state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.domain.model import KeyStatus
from keyturn.domain.retirement import QuietPolicy

# A key created this long after the intent was not created by the rotation that wrote it:
# CreateAccessKey follows the intent within seconds, a human's key hours later.
ORPHAN_WINDOW = timedelta(minutes=10)
# IAM's CreateDate and the local clock that stamped the intent may disagree slightly.
CLOCK_SKEW = timedelta(minutes=5)


class RotationState(StrEnum):
    INTENT = "intent"
    CREATED = "created"
    STORED_PENDING = "stored_pending"
    VERIFIED = "verified"
    PROMOTED = "promoted"
    OLD_DEACTIVATED = "old_deactivated"
    OLD_DELETED = "old_deleted"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self in (RotationState.OLD_DELETED, RotationState.ABORTED, RotationState.ROLLED_BACK)


S = RotationState
TRANSITIONS: dict[RotationState, frozenset[RotationState]] = {
    S.INTENT: frozenset({S.CREATED, S.ABORTED}),
    S.CREATED: frozenset({S.STORED_PENDING, S.ABORTED, S.INTENT}),
    S.STORED_PENDING: frozenset({S.VERIFIED, S.ABORTED}),
    S.VERIFIED: frozenset({S.PROMOTED, S.ABORTED}),
    S.PROMOTED: frozenset({S.OLD_DEACTIVATED, S.ROLLED_BACK}),
    S.OLD_DEACTIVATED: frozenset({S.OLD_DELETED, S.ROLLED_BACK}),
    S.OLD_DELETED: frozenset(),
    S.ABORTED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}


class Unpublished(StrEnum):
    """An event owed to consumers, by the state it announced (one letter in the journal)."""

    ROTATED = "R"
    RETIRED = "D"


class OldKey(StrEnum):
    """What this rotation knows of its old key's status (one letter in the journal, v5).

    Only keyturn writes the sealed journal, so this is a fact a tag-writer cannot change
    (a removed incident tag can): rollback reactivates the old key only when it was active
    when this rotation started *and* this rotation is what deactivated it.
    """

    ACTIVE = "a"  # active when the intent was written
    INACTIVE = "i"  # already inactive then (quarantined, or off by hand): never served again
    RETIRING = "r"  # active then, and this rotation deactivates it (written ahead of the call)


class InvalidTransitionError(OperationFailedError):
    """A step tried to move a rotation backwards or skip a safety step."""


@dataclass(frozen=True, slots=True)
class IamKey:
    """One access key as IAM lists it (no secret)."""

    key_id: str
    status: KeyStatus
    created: datetime

    @property
    def active(self) -> bool:
        return self.status is KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """What the journal keeps for one user's latest rotation. Never a secret."""

    user: str
    token: str
    state: RotationState
    intent_at: datetime
    old_key_id: str | None
    existing: tuple[str, ...] = ()
    new_key_id: str | None = None
    updated_at: datetime | None = None
    # The old key stays active at least until then, whatever the run's overlap: set by an
    # enrollment's first rotation, so consumers can be pointed at the store first.
    hold_until: datetime | None = None
    # When the store first served the new key (PROMOTED recorded): the start of the
    # usage-aware retirement's quiet period and bound (keyturn.domain.retirement).
    promoted_at: datetime | None = None
    # Consumers' events (keyturn.adapters.events) this rotation could not publish yet:
    # retried by the next run that reads this record, cleared once published (issue 16).
    unpublished: tuple[Unpublished, ...] = ()
    # The old key's status as this rotation saw and changed it (v5); None for a record
    # written before v5 (or one without an old key): rollback then behaves as it did.
    old_mark: OldKey | None = None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One stored version: its rotation token and key id (None when not read yet)."""

    token: str | None
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoreView:
    """Which versions a user's store location holds, without their secrets."""

    current: StoredEntry | None = None
    pending: StoredEntry | None = None
    previous: StoredEntry | None = None

    @property
    def open_pending(self) -> StoredEntry | None:
        """The pending entry, unless it is already the current one (promoted)."""
        if self.pending is None:
            return None
        if self.current is not None and self.current.token == self.pending.token:
            return None
        return self.pending


def begin(
    user: str,
    token: str,
    keys: Sequence[IamKey],
    old_key_id: str | None,
    now: datetime,
    *,
    hold: timedelta | None = None,
) -> RotationRecord:
    """The write-ahead intent: who, which key is replaced (and whether it was active then),
    which keys existed before, and (for an enrollment) how long the old key must stay
    active."""
    old = next((key for key in keys if key.key_id == old_key_id), None)
    return RotationRecord(
        user=user,
        token=token,
        state=S.INTENT,
        intent_at=now,
        old_key_id=old_key_id,
        existing=tuple(key.key_id for key in keys),
        updated_at=now,
        hold_until=None if not hold else now + hold,
        old_mark=None if old is None else OldKey.ACTIVE if old.active else OldKey.INACTIVE,
    )


def retiring(record: RotationRecord) -> RotationRecord:
    """The record to write before this rotation deactivates its old key: the mark that
    lets a later rollback reactivate it (and nothing else: a key someone else turned off,
    a quarantine above all, stays off). A pre-v5 record is left as it is."""
    if record.old_mark is not OldKey.ACTIVE:
        return record
    return replace(record, old_mark=OldKey.RETIRING)


def rollback_refusal(record: RotationRecord, old_active_now: bool) -> str | None:
    """Why a rollback must not make the old key current again, from the sealed record
    alone (no tag another principal can remove); None when it may.

    - inactive when this rotation started (a quarantine deactivates before it rotates):
      restoring it would serve a key someone chose to turn off, the leaked one above all;
    - active then, inactive now, but this rotation never marked that it retired it:
      someone else (a quarantine during the overlap) turned it off.
    A record from before v5 carries no mark: None (the incident record check still runs).
    """
    mark = record.old_mark
    if mark is OldKey.INACTIVE:
        return (
            "was already inactive when this rotation started (quarantined as exposed, or "
            "deactivated by hand), so a rollback never serves it again"
        )
    if mark is OldKey.ACTIVE and not old_active_now:
        return (
            "was deactivated by someone other than this rotation (a quarantine?), so a "
            "rollback never reactivates it"
        )
    return None


def advance(
    record: RotationRecord, to: RotationState, now: datetime, *, new_key_id: str | None = None
) -> RotationRecord:
    """Move one step forward; anything not in TRANSITIONS is a programming error."""
    if to == record.state:
        return record
    if to not in TRANSITIONS[record.state]:
        raise InvalidTransitionError(
            f"rotation of {record.user}: cannot go from {record.state} to {to}"
        )
    promoted_at = record.promoted_at
    if to is S.PROMOTED and promoted_at is None:
        promoted_at = now
    return replace(
        record,
        state=to,
        updated_at=now,
        new_key_id=new_key_id or record.new_key_id,
        promoted_at=promoted_at,
    )


# -- deriving the true state from facts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything `derive` looks at, read just before deciding."""

    record: RotationRecord | None
    keys: tuple[IamKey, ...]
    store: StoreView


def orphans(record: RotationRecord, keys: Sequence[IamKey], store: StoreView) -> list[str]:
    """Keys this rotation created whose secret never reached the store (invariant 2).

    A key is an orphan only if all hold: it did not exist when the intent was written, it is
    in no store entry, and it was created inside the short window after the intent. Any
    other key, including one a person made later, is not ours and is never touched.
    """
    if record.state not in (S.INTENT, S.CREATED, S.ABORTED):
        return []
    stored = {e.key_id for e in (store.current, store.pending, store.previous) if e is not None}
    earliest = record.intent_at - CLOCK_SKEW
    latest = record.intent_at + ORPHAN_WINDOW
    return [
        key.key_id
        for key in keys
        if key.key_id not in record.existing
        and key.key_id not in stored
        and earliest <= key.created <= latest
    ]


def derive(facts: Facts, now: datetime) -> RotationRecord | None:
    """The rotation's real state, whatever the journal last said.

    Store first: a pending entry with our token means STORED_PENDING, a current entry with
    our token means at least PROMOTED, then the old key's IAM status says how far the
    retirement went. Without either, the intent stands (or a lost key is an orphan).
    """
    record = facts.record
    if record is None or record.state in (S.ABORTED, S.ROLLED_BACK):
        return record
    by_id = {key.key_id: key for key in facts.keys}
    store = facts.store
    if store.current is not None and store.current.token == record.token:
        new_id = store.current.key_id or record.new_key_id
        old = by_id.get(record.old_key_id or "")
        if record.old_key_id is None or old is None:
            state = S.OLD_DELETED
        elif old.active:
            state = S.PROMOTED
        else:
            state = S.OLD_DEACTIVATED
        return replace(record, state=state, new_key_id=new_id)
    pending = store.open_pending
    if pending is not None and pending.token == record.token:
        return replace(record, state=S.STORED_PENDING, new_key_id=pending.key_id)
    if orphans(record, facts.keys, store):
        return replace(record, state=S.CREATED)
    if record.state in (S.INTENT, S.CREATED, S.STORED_PENDING, S.VERIFIED):
        return replace(record, state=S.INTENT, new_key_id=None)
    # The journal said promoted or later, but the store no longer agrees (a rollback by
    # hand, or a different rotation tool): nothing of ours is left to finish.
    return replace(record, state=S.ABORTED)


def restored(facts: Facts) -> RotationRecord | None:
    """The rotation as promoted, if a rollback has already put the store back.

    A rollback restores the store by making the previous entry current again, which leaves
    our entry (our token) as the previous one. Nothing else moves our token from current to
    previous, so that shape means "promoted, then restored": the rollback that did it was
    cut off before it deactivated the new key or recorded ROLLED_BACK. `derive` cannot see
    it (the store no longer names the new key as current or pending), so a rerun of the
    rollback asks here first and finishes the job. None when the shape is not there.
    """
    record = facts.record
    if record is None or record.state.terminal:
        return None
    current, previous = facts.store.current, facts.store.previous
    if previous is None or previous.token != record.token:
        return None
    if current is not None and current.token == record.token:
        return None
    return replace(record, state=S.PROMOTED, new_key_id=previous.key_id or record.new_key_id)


# -- deciding the next step ---------------------------------------------------------------


class Step(StrEnum):
    DELETE_ORPHAN = "delete_orphan"
    CREATE = "create"
    VERIFY = "verify"
    PROMOTE = "promote"
    WAIT_OVERLAP = "wait_overlap"
    # retire = "when-quiet": ask IAM when the old key was last used, then retire or wait
    CHECK_QUIET = "check_quiet"
    DEACTIVATE_OLD = "deactivate_old"
    WAIT_GRACE = "wait_grace"
    DELETE_OLD = "delete_old"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Timing:
    overlap: timedelta = timedelta(0)
    grace: timedelta = timedelta(days=7)
    delete_old: bool = True
    # None: retire on the timer (overlap / hold); else only once the old key is quiet
    retire: QuietPolicy | None = None


def next_step(record: RotationRecord, now: datetime, timing: Timing) -> Step:
    """The single step that moves `record` (as derived) forward."""
    state = record.state
    if state is S.INTENT:
        return Step.CREATE
    if state is S.CREATED:
        return Step.DELETE_ORPHAN
    if state in (S.STORED_PENDING,):
        return Step.VERIFY
    if state is S.VERIFIED:
        return Step.PROMOTE
    if state is S.PROMOTED:
        if now < record.intent_at + timing.overlap:
            return Step.WAIT_OVERLAP
        if record.hold_until is not None and now < record.hold_until:
            return Step.WAIT_OVERLAP
        return Step.DEACTIVATE_OLD if timing.retire is None else Step.CHECK_QUIET
    if state is S.OLD_DEACTIVATED:
        if not timing.delete_old:
            return Step.DONE
        if now < record.intent_at + timing.grace:
            return Step.WAIT_GRACE
        return Step.DELETE_OLD
    return Step.DONE


# -- planning a new rotation --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartPlan:
    """What a fresh rotation will do first: which key it replaces, which it retires."""

    user: str
    old_key_id: str
    retire_first: str | None = None


def plan_start(user: str, keys: Sequence[IamKey], protected: set[str]) -> StartPlan:
    """Choose the key to replace and, with two keys, the inactive one to retire first.

    `protected` are key ids a store entry still holds as current or pending: those are
    never retired here. Two active keys, or no inactive key we may retire, stop the
    rotation with an error that names the keys (invariant 3).
    """
    if not keys:
        raise BadInputError(f"{user} has no access key to rotate")
    if len(keys) == 1:
        return StartPlan(user=user, old_key_id=keys[0].key_id)
    if len(keys) > 2:  # IAM allows 2; be explicit rather than guess
        raise OperationFailedError(f"{user} has {len(keys)} keys; IAM allows 2")
    names = ", ".join(f"{key.key_id} ({key.status.value})" for key in keys)
    inactive = [key for key in keys if not key.active and key.key_id not in protected]
    if not inactive:
        raise OperationFailedError(
            f"{user} already has 2 access keys ({names}) and neither is an inactive key "
            "keyturn may retire: deactivate the one no longer in use, then run again"
        )
    retire = min(inactive, key=lambda key: key.created)
    keep = next(key for key in keys if key.key_id != retire.key_id)
    return StartPlan(user=user, old_key_id=keep.key_id, retire_first=retire.key_id)


# -- the journal's compact text form (an IAM tag value) ------------------------------------

# v2 added the enrollment hold, v3 the promotion time, v4 the unpublished events, v5 the
# old key's status (OldKey); a v1 record (unsealed, before issue 12) is never trusted.
# Sealed v2-v4 records are keyturn's own and still read (no promotion time: the service
# stamps one when it first sees the rotation promoted; no unpublished events; no old-key
# mark: rollback as before v5).
RECORD_VERSION = "v5"
FIELDS = {"v2": 8, "v3": 9, "v4": 10, "v5": 11}


def _epoch(value: datetime | None) -> str:
    return "-" if value is None else str(int(value.timestamp()))


def encode(record: RotationRecord) -> str:
    """`v5:state:token:epoch:old:existing/ids:new:hold:promoted:unpublished:oldkey`: fits
    an IAM tag value (256 chars, no commas or braces allowed) with room for its seal
    (keyturn.domain.trust), no secret. Worst case: a 64-char token (Secrets Manager's
    longest), two existing 20-char key ids, every time set, both events owed, the old-key
    mark: 205 chars, plus ":" and a 43-char seal = 249."""
    return ":".join(
        [
            RECORD_VERSION,
            record.state.value,
            record.token,
            str(int(record.intent_at.timestamp())),
            record.old_key_id or "-",
            "/".join(record.existing) or "-",
            record.new_key_id or "-",
            _epoch(record.hold_until),
            _epoch(record.promoted_at),
            "".join(record.unpublished) or "-",
            record.old_mark or "-",
        ]
    )


def decode(user: str, text: str) -> RotationRecord:
    """The record `encode` wrote (v5) or a v2-v4 predecessor; BadInputError for anything else
    (v1, a wrong field count, an unknown state, a non-number time). Reading says nothing
    about who wrote it: only a verified seal does (the journal adapter checks it before
    calling this)."""
    from datetime import UTC

    unreadable = BadInputError(f"{user}: unreadable rotation journal entry {text[:80]!r}")
    parts = text.split(":")
    if FIELDS.get(parts[0]) != len(parts):
        raise unreadable
    parts += ["-"] * (FIELDS[RECORD_VERSION] - len(parts))
    _, state, token, epoch, old, existing, new, hold, promoted, owed, mark_text = parts
    fields = (old, existing, new, hold, promoted, owed, mark_text)
    if not token or any(not part for part in fields):
        raise unreadable

    def when(value: str) -> datetime | None:
        return None if value == "-" else datetime.fromtimestamp(int(value), tz=UTC)

    try:
        parsed_state = RotationState(state)
        intent_at = datetime.fromtimestamp(int(epoch), tz=UTC)
        hold_until = when(hold)
        promoted_at = when(promoted)
        unpublished = () if owed == "-" else tuple(dict.fromkeys(map(Unpublished, owed)))
        old_mark = None if mark_text == "-" else OldKey(mark_text)
    except (ValueError, OverflowError, OSError):
        raise unreadable from None
    return RotationRecord(
        user=user,
        token=token,
        state=parsed_state,
        intent_at=intent_at,
        old_key_id=None if old == "-" else old,
        existing=() if existing == "-" else tuple(existing.split("/")),
        new_key_id=None if new == "-" else new,
        hold_until=hold_until,
        promoted_at=promoted_at,
        unpublished=unpublished,
        old_mark=old_mark,
    )
