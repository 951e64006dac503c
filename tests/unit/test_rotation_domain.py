"""The pure state machine: transitions, derivation from facts, orphans, the 2-key plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.domain.model import KeyStatus
from keyturn.domain.rotation import (
    Facts,
    IamKey,
    InvalidTransitionError,
    OldKey,
    RotationRecord,
    RotationState,
    Step,
    StoredEntry,
    StoreView,
    Timing,
    advance,
    begin,
    decode,
    derive,
    encode,
    next_step,
    orphans,
    plan_start,
    retiring,
    rollback_refusal,
)

S = RotationState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD = IamKey("AKIAOLD0000000000000", KeyStatus.ACTIVE, T0 - timedelta(days=90))


def key(key_id: str, *, active: bool = True, at: datetime = T0) -> IamKey:
    return IamKey(key_id, KeyStatus.ACTIVE if active else KeyStatus.INACTIVE, at)


def intent() -> RotationRecord:
    return begin("alice", "tok", [OLD], OLD.key_id, T0)


# -- transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (S.INTENT, S.PROMOTED),  # promote without storing and verifying
        (S.STORED_PENDING, S.PROMOTED),  # promote without verifying (invariant 4)
        (S.STORED_PENDING, S.OLD_DEACTIVATED),  # retire before verified (invariant 1)
        (S.VERIFIED, S.OLD_DEACTIVATED),  # retire before promoted
        (S.INTENT, S.OLD_DELETED),
        (S.OLD_DELETED, S.PROMOTED),
    ],
)
def test_unsafe_transitions_are_refused(start: RotationState, to: RotationState) -> None:
    record = advance(intent(), S.ABORTED, T0) if start is S.ABORTED else intent()
    object.__setattr__(record, "state", start)
    with pytest.raises(InvalidTransitionError):
        advance(record, to, T0)


def test_the_happy_path_is_allowed_in_order() -> None:
    record = intent()
    for state in (
        S.CREATED,
        S.STORED_PENDING,
        S.VERIFIED,
        S.PROMOTED,
        S.OLD_DEACTIVATED,
        S.OLD_DELETED,
    ):
        record = advance(record, state, T0)
    assert record.state is S.OLD_DELETED
    assert advance(record, S.OLD_DELETED, T0) is record  # same state: idempotent


# -- derive: the state from facts -----------------------------------------------------------


def test_promoted_when_store_current_carries_our_token_and_old_is_active() -> None:
    view = StoreView(current=StoredEntry("tok", "AKIANEW"))
    keys = (OLD, key("AKIANEW"))
    derived = derive(Facts(intent(), keys, view), T0)
    assert derived is not None
    assert derived.state is S.PROMOTED
    assert next_step(derived, T0, Timing()) is Step.DEACTIVATE_OLD


def test_pending_with_our_token_needs_verification_not_retirement() -> None:
    view = StoreView(current=StoredEntry("older", OLD.key_id), pending=StoredEntry("tok", "N"))
    derived = derive(Facts(intent(), (OLD, key("N")), view), T0)
    assert derived is not None
    assert derived.state is S.STORED_PENDING
    assert next_step(derived, T0, Timing()) is Step.VERIFY


def test_key_created_after_intent_and_stored_nowhere_is_an_orphan() -> None:
    lost = key("AKIALOST", at=T0 + timedelta(seconds=2))
    derived = derive(Facts(intent(), (OLD, lost), StoreView()), T0)
    assert derived is not None
    assert derived.state is S.CREATED
    assert next_step(derived, T0, Timing()) is Step.DELETE_ORPHAN
    assert orphans(intent(), [OLD, lost], StoreView()) == ["AKIALOST"]


def test_a_key_made_long_after_the_intent_is_not_ours() -> None:
    """Invariant 2's other half: keys keyturn did not create are never deleted."""
    human = key("AKIAHUMAN", at=T0 + timedelta(hours=3))
    assert orphans(intent(), [OLD, human], StoreView()) == []


def test_keys_existing_at_intent_time_are_never_orphans() -> None:
    other = key("AKIAOTHER", active=False, at=T0)
    record = begin("alice", "tok", [OLD, other], OLD.key_id, T0)
    assert orphans(record, [OLD, other], StoreView()) == []


def test_a_stored_key_is_never_an_orphan() -> None:
    new = key("AKIANEW", at=T0 + timedelta(seconds=1))
    view = StoreView(previous=StoredEntry("x", "AKIANEW"))
    assert orphans(intent(), [OLD, new], view) == []


@given(st.integers(min_value=-30_000, max_value=30_000))
def test_orphans_only_inside_the_window(offset_seconds: int) -> None:
    when = T0 + timedelta(seconds=offset_seconds)
    found = orphans(intent(), [OLD, key("AKIAX", at=when)], StoreView())
    inside = timedelta(minutes=-5) <= timedelta(seconds=offset_seconds) <= timedelta(minutes=10)
    assert (found == ["AKIAX"]) is inside


def test_overlap_and_grace_are_waited_for() -> None:
    record = advance(
        advance(advance(advance(intent(), S.CREATED, T0), S.STORED_PENDING, T0), S.VERIFIED, T0),
        S.PROMOTED,
        T0,
    )
    timing = Timing(overlap=timedelta(hours=1), grace=timedelta(days=7))
    assert next_step(record, T0 + timedelta(minutes=59), timing) is Step.WAIT_OVERLAP
    assert next_step(record, T0 + timedelta(hours=1), timing) is Step.DEACTIVATE_OLD
    done = advance(record, S.OLD_DEACTIVATED, T0)
    assert next_step(done, T0 + timedelta(days=6), timing) is Step.WAIT_GRACE
    assert next_step(done, T0 + timedelta(days=7), timing) is Step.DELETE_OLD
    assert next_step(done, T0 + timedelta(days=99), Timing(delete_old=False)) is Step.DONE


# -- the 2-key plan (invariant 3) --------------------------------------------------------------


def test_two_active_keys_stop_and_name_both() -> None:
    with pytest.raises(OperationFailedError, match=r"AKIAA.*AKIAB"):
        plan_start("bob", [key("AKIAA"), key("AKIAB")], set())


def test_two_keys_retire_only_the_inactive_one() -> None:
    plan = plan_start("bob", [key("AKIAA"), key("AKIAB", active=False)], set())
    assert plan.retire_first == "AKIAB"
    assert plan.old_key_id == "AKIAA"


def test_an_inactive_key_the_store_still_serves_is_not_retired() -> None:
    with pytest.raises(OperationFailedError, match="neither is an inactive key"):
        plan_start("bob", [key("AKIAA"), key("AKIAB", active=False)], {"AKIAB"})


def test_no_key_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="no access key"):
        plan_start("bob", [], set())


# -- the journal's text form ------------------------------------------------------------------


def test_record_round_trips_through_a_tag_value_without_secrets() -> None:
    record = advance(intent(), S.CREATED, T0, new_key_id="AKIANEW")
    text = encode(record)
    assert len(text) <= 256
    assert not set(text) & set(",{}\"'")
    back = decode("alice", text)
    assert back.state is S.CREATED
    assert back.existing == (OLD.key_id,)
    assert back.intent_at == T0
    assert back.new_key_id == "AKIANEW"


def test_unreadable_record_is_bad_input() -> None:
    with pytest.raises(BadInputError):
        decode("alice", "v9:garbage")


@pytest.mark.parametrize(
    "text",
    [
        "v1:promoted:tok:1767225600:AKIAOLD:-:AKIANEW",  # the unsealed format before v2
        "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW",  # 7 fields
        "v2:promoted::1767225600:AKIAOLD:-:AKIANEW:-",  # no token
        "v2:promoted:tok:soon:AKIAOLD:-:AKIANEW:-",
        "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:later",
        "v2:promoted:tok:1767225600::-:AKIANEW:-",  # an empty field, not "-"
        "v2:promoted:tok:99999999999999999999:AKIAOLD:-:AKIANEW:-",
    ],
)
def test_decode_accepts_only_what_encode_writes(text: str) -> None:
    with pytest.raises(BadInputError):
        decode("alice", text)


def test_round_trip_keeps_token_user_old_key_and_hold() -> None:
    record = begin("alice", "tok-1", [OLD], OLD.key_id, T0, hold=timedelta(days=7))
    back = decode("alice", encode(record))
    assert (back.user, back.token, back.old_key_id) == ("alice", "tok-1", OLD.key_id)
    assert back.hold_until == T0 + timedelta(days=7)
    assert decode("alice", encode(begin("alice", "t", [OLD], OLD.key_id, T0))).hold_until is None


def test_an_enrollment_hold_keeps_the_old_key_whatever_the_overlap() -> None:
    record = replace(
        begin("alice", "t", [OLD], OLD.key_id, T0, hold=timedelta(days=7)), state=S.PROMOTED
    )
    timing = Timing(overlap=timedelta(0))
    assert next_step(record, T0 + timedelta(days=7) - timedelta(seconds=1), timing) is (
        Step.WAIT_OVERLAP
    )
    assert next_step(record, T0 + timedelta(days=7), timing) is Step.DEACTIVATE_OLD


# -- the old key's status (v5): what rollback may reactivate (hostile review H4) -------------


def test_the_intent_records_whether_the_old_key_was_active() -> None:
    assert intent().old_mark is OldKey.ACTIVE
    off = key("AKIAOFF0000000000000", active=False)
    assert begin("alice", "t", [off], off.key_id, T0).old_mark is OldKey.INACTIVE
    assert begin("alice", "t", [], None, T0).old_mark is None


def test_only_an_active_old_key_is_marked_as_retired_by_this_rotation() -> None:
    assert retiring(intent()).old_mark is OldKey.RETIRING
    off = key("AKIAOFF0000000000000", active=False)
    quarantined = begin("alice", "t", [off], off.key_id, T0)
    assert retiring(quarantined) == quarantined
    legacy = replace(intent(), old_mark=None)
    assert retiring(legacy) == legacy


@pytest.mark.parametrize(
    ("mark", "active_now", "refused"),
    [
        (OldKey.INACTIVE, False, True),  # a quarantine deactivated it before rotating
        (OldKey.INACTIVE, True, True),  # ... and someone turned it back on: still never served
        (OldKey.ACTIVE, False, True),  # someone else deactivated it during the overlap
        (OldKey.ACTIVE, True, False),  # still active: nothing to reactivate
        (OldKey.RETIRING, False, False),  # this rotation retired it: rollback undoes that
        (OldKey.RETIRING, True, False),
        (None, False, False),  # v2-v4: as before (the incident record check only)
    ],
)
def test_rollback_reactivates_only_what_this_rotation_deactivated(
    mark: OldKey | None, active_now: bool, refused: bool
) -> None:
    record = replace(intent(), state=S.OLD_DEACTIVATED, old_mark=mark)
    assert (rollback_refusal(record, active_now) is not None) is refused


def test_the_old_key_mark_round_trips_and_older_records_have_none() -> None:
    for mark in (*OldKey, None):
        record = replace(intent(), old_mark=mark)
        assert decode("alice", encode(record)).old_mark is mark
    v4 = decode("alice", "v4:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-")
    assert v4.old_mark is None


@given(
    mark=st.sampled_from([*OldKey, None]),
    state=st.sampled_from(list(RotationState)),
    token=st.text("abcdef0123456789-", min_size=1, max_size=64),
    existing=st.lists(st.sampled_from(["AKIAA", "AKIAB"]), max_size=2, unique=True),
)
def test_every_v5_record_round_trips_with_its_old_key_mark(
    mark: OldKey | None, state: RotationState, token: str, existing: list[str]
) -> None:
    record = replace(
        intent(), state=state, token=token, existing=tuple(existing), old_mark=mark,
        updated_at=None,
    )  # fmt: skip
    text = encode(record)
    assert text.startswith("v5:")
    assert len(text.split(":")) == 11
    assert decode("alice", text) == record
