"""The rotation state machine's edges that mutation testing found untested (issue 18).

Each test here kills mutants that every older test let live: the full transition table
(every forbidden pair, every terminal state), the journal's text form field by field, the
orphan window's exact edges, `derive` and `restored` case by case and as a property, and
which key `plan_start` retires. The expected values are written out here, not read from
the module, so a changed constant fails a test.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from hypothesis import given, settings
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
    StartPlan,
    StoredEntry,
    StoreView,
    Unpublished,
    advance,
    begin,
    decode,
    derive,
    encode,
    orphans,
    plan_start,
    restored,
    retiring,
    rollback_refusal,
)

S = RotationState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD = IamKey("AKIAOLD0000000000000", KeyStatus.ACTIVE, T0 - timedelta(days=90))
NEW = "AKIANEW0000000000000"

# The only moves a rotation may make, written out (not read from TRANSITIONS).
ALLOWED = {
    (S.INTENT, S.CREATED),
    (S.INTENT, S.ABORTED),
    (S.CREATED, S.STORED_PENDING),
    (S.CREATED, S.ABORTED),
    (S.CREATED, S.INTENT),
    (S.STORED_PENDING, S.VERIFIED),
    (S.STORED_PENDING, S.ABORTED),
    (S.VERIFIED, S.PROMOTED),
    (S.VERIFIED, S.ABORTED),
    (S.PROMOTED, S.OLD_DEACTIVATED),
    (S.PROMOTED, S.ROLLED_BACK),
    (S.OLD_DEACTIVATED, S.OLD_DELETED),
    (S.OLD_DEACTIVATED, S.ROLLED_BACK),
}
TERMINAL = (S.OLD_DELETED, S.ABORTED, S.ROLLED_BACK)


def key(key_id: str, *, active: bool = True, at: datetime = T0) -> IamKey:
    return IamKey(key_id, KeyStatus.ACTIVE if active else KeyStatus.INACTIVE, at)


def record_in(state: RotationState, **changes: object) -> RotationRecord:
    base = replace(begin("alice", "tok", [OLD], OLD.key_id, T0), state=state)
    return replace(base, **changes)  # type: ignore[arg-type]


# -- transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "to"), list(product(S, S)))
def test_every_move_outside_the_table_is_refused(start: RotationState, to: RotationState) -> None:
    """Every pair of states, not a sample: with hypothesis's 60 examples under mutmut, one
    dropped pair (OLD_DEACTIVATED -> ROLLED_BACK) was missed in one run of two."""
    record = record_in(start)
    if start == to:
        assert advance(record, to, T0 + timedelta(hours=1)) is record
    elif (start, to) in ALLOWED:
        assert advance(record, to, T0 + timedelta(hours=1)).state is to
    else:
        with pytest.raises(InvalidTransitionError) as caught:
            advance(record, to, T0 + timedelta(hours=1))
        assert str(caught.value) == f"rotation of alice: cannot go from {start} to {to}"


@pytest.mark.parametrize("start", TERMINAL)
def test_terminal_states_refuse_every_move(start: RotationState) -> None:
    assert start.terminal
    for to in S:
        if to is not start:
            with pytest.raises(InvalidTransitionError):
                advance(record_in(start), to, T0)


def test_only_the_three_ends_are_terminal() -> None:
    assert {state for state in S if state.terminal} == set(TERMINAL)


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (S.PROMOTED, S.OLD_DELETED),  # delete the old key without deactivating it first
        (S.ABORTED, S.INTENT),
        (S.ROLLED_BACK, S.PROMOTED),
        (S.OLD_DEACTIVATED, S.PROMOTED),
        (S.VERIFIED, S.STORED_PENDING),
    ],
)
def test_the_named_unsafe_moves_are_refused(start: RotationState, to: RotationState) -> None:
    with pytest.raises(InvalidTransitionError):
        advance(record_in(start), to, T0)


def test_begin_stamps_the_intent_and_its_update_time() -> None:
    now = T0 + timedelta(minutes=3)
    record = begin("bob", "tk", [OLD, key(NEW)], OLD.key_id, now, hold=timedelta(days=2))
    assert record == RotationRecord(
        user="bob",
        token="tk",
        state=S.INTENT,
        intent_at=now,
        old_key_id=OLD.key_id,
        existing=(OLD.key_id, NEW),
        new_key_id=None,
        updated_at=now,
        hold_until=now + timedelta(days=2),
        promoted_at=None,
        old_mark=OldKey.ACTIVE,
    )
    assert begin("bob", "tk", [OLD], None, now, hold=timedelta(0)).hold_until is None


def test_advance_stamps_the_time_keeps_the_new_key_and_the_first_promotion() -> None:
    later = T0 + timedelta(minutes=1)
    created = advance(record_in(S.INTENT), S.CREATED, later, new_key_id=NEW)
    assert (created.updated_at, created.new_key_id, created.promoted_at) == (later, NEW, None)
    pending = advance(created, S.STORED_PENDING, later + timedelta(seconds=1))
    assert pending.new_key_id == NEW
    assert pending.updated_at == later + timedelta(seconds=1)
    promoted = advance(record_in(S.VERIFIED), S.PROMOTED, later)
    assert promoted.promoted_at == later
    again = advance(record_in(S.VERIFIED, promoted_at=T0), S.PROMOTED, later)
    assert again.promoted_at == T0


# -- orphans: the window's exact edges -----------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "orphan"),
    [
        (-timedelta(minutes=5), True),  # CLOCK_SKEW early, inclusive
        (-timedelta(minutes=5, seconds=1), False),
        (-timedelta(minutes=4, seconds=59), True),
        (timedelta(0), True),
        (timedelta(minutes=10), True),  # ORPHAN_WINDOW late, inclusive
        (timedelta(minutes=10, seconds=1), False),
        (timedelta(minutes=9, seconds=59), True),
    ],
)
def test_orphan_window_edges(offset: timedelta, orphan: bool) -> None:
    candidate = key(NEW, at=T0 + offset)
    found = orphans(record_in(S.INTENT), [OLD, candidate], StoreView())
    assert found == ([NEW] if orphan else [])


@pytest.mark.parametrize("state", list(S))
def test_orphans_are_looked_for_only_before_anything_was_stored(state: RotationState) -> None:
    found = orphans(record_in(state), [OLD, key(NEW)], StoreView())
    assert found == ([NEW] if state in (S.INTENT, S.CREATED, S.ABORTED) else [])


@pytest.mark.parametrize("slot", ["current", "pending", "previous"])
def test_a_key_any_store_slot_holds_is_no_orphan(slot: str) -> None:
    store = StoreView(**{slot: StoredEntry("other", NEW)})  # type: ignore[arg-type]
    assert orphans(record_in(S.INTENT), [OLD, key(NEW)], store) == []


# -- derive, case by case ------------------------------------------------------------------


def facts(record: RotationRecord | None, *keys: IamKey, store: StoreView | None = None) -> Facts:
    return Facts(record=record, keys=keys, store=store or StoreView())


def test_no_record_derives_nothing() -> None:
    assert derive(facts(None, OLD, store=StoreView(current=StoredEntry("tok", NEW))), T0) is None


@pytest.mark.parametrize("state", [S.ABORTED, S.ROLLED_BACK])
def test_an_ended_record_stays_ended_whatever_the_store_says(state: RotationState) -> None:
    record = record_in(state)
    store = StoreView(current=StoredEntry("tok", NEW), pending=StoredEntry("tok", NEW))
    assert derive(facts(record, OLD, key(NEW), store=store), T0) is record


def test_store_current_with_our_token_and_the_old_key_active_is_promoted() -> None:
    record = record_in(S.VERIFIED, new_key_id="AKIAJOURNAL")
    store = StoreView(current=StoredEntry("tok", NEW))
    derived = derive(facts(record, OLD, key(NEW), store=store), T0)
    assert derived == replace(record, state=S.PROMOTED, new_key_id=NEW)


def test_store_current_without_a_key_id_keeps_the_journal_new_key() -> None:
    record = record_in(S.VERIFIED, new_key_id="AKIAJOURNAL")
    store = StoreView(current=StoredEntry("tok", None))
    derived = derive(facts(record, OLD, store=store), T0)
    assert derived is not None
    assert derived.new_key_id == "AKIAJOURNAL"


def test_old_key_inactive_means_deactivated_and_gone_means_deleted() -> None:
    record = record_in(S.PROMOTED)
    store = StoreView(current=StoredEntry("tok", NEW))
    inactive = replace(OLD, status=KeyStatus.INACTIVE)
    deactivated = derive(facts(record, inactive, key(NEW), store=store), T0)
    assert deactivated == replace(record, state=S.OLD_DEACTIVATED, new_key_id=NEW)
    deleted = derive(facts(record, key(NEW), store=store), T0)
    assert deleted == replace(record, state=S.OLD_DELETED, new_key_id=NEW)
    no_old = record_in(S.PROMOTED, old_key_id=None)
    assert derive(facts(no_old, OLD, key(NEW), store=store), T0) == replace(
        no_old, state=S.OLD_DELETED, new_key_id=NEW
    )


def test_pending_with_our_token_is_stored_pending_with_its_key() -> None:
    record = record_in(S.CREATED, new_key_id="AKIAJOURNAL")
    store = StoreView(current=StoredEntry("before", OLD.key_id), pending=StoredEntry("tok", NEW))
    derived = derive(facts(record, OLD, key(NEW), store=store), T0)
    assert derived == replace(record, state=S.STORED_PENDING, new_key_id=NEW)


def test_a_lost_key_makes_the_intent_created_for_its_orphan_step() -> None:
    record = record_in(S.INTENT)
    assert derive(facts(record, OLD, key(NEW)), T0) == replace(record, state=S.CREATED)


@pytest.mark.parametrize("state", [S.INTENT, S.CREATED, S.STORED_PENDING, S.VERIFIED])
def test_before_promotion_with_nothing_stored_the_intent_stands(state: RotationState) -> None:
    record = record_in(state, new_key_id=NEW)
    derived = derive(facts(record, OLD), T0)
    assert derived == replace(record, state=S.INTENT, new_key_id=None)


@pytest.mark.parametrize("state", [S.PROMOTED, S.OLD_DEACTIVATED, S.OLD_DELETED])
def test_after_promotion_a_store_that_disagrees_aborts(state: RotationState) -> None:
    record = record_in(state, new_key_id=NEW)
    store = StoreView(current=StoredEntry("someone-else", "AKIAOTHER"))
    assert derive(facts(record, OLD, key(NEW), store=store), T0) == replace(record, state=S.ABORTED)


# -- derive as a property: it never sends the store's key to retirement --------------------

KEY_IDS = ["AKIAA", "AKIAB", "AKIAC"]
TOKENS = ["tok", "other"]
entries = st.one_of(
    st.none(),
    st.builds(StoredEntry, st.sampled_from([*TOKENS, None]), st.sampled_from([*KEY_IDS, None])),
)
iam_keys = st.builds(
    IamKey,
    st.sampled_from(KEY_IDS),
    st.sampled_from(list(KeyStatus)),
    st.integers(-20, 20).map(lambda minutes: T0 + timedelta(minutes=minutes)),
)
records = st.builds(
    RotationRecord,
    user=st.just("alice"),
    token=st.just("tok"),
    state=st.sampled_from(list(S)),
    intent_at=st.just(T0),
    old_key_id=st.sampled_from([*KEY_IDS, None]),
    existing=st.lists(st.sampled_from(KEY_IDS), max_size=2).map(tuple),
    new_key_id=st.sampled_from([*KEY_IDS, None]),
)


@settings(max_examples=200)
@given(
    st.one_of(st.none(), records),
    st.lists(iam_keys, max_size=3, unique_by=lambda k: k.key_id),
    st.builds(StoreView, entries, entries, entries),
)
def test_derive_never_names_a_served_key_as_retirable(
    record: RotationRecord | None, keys: list[IamKey], store: StoreView
) -> None:
    derived = derive(Facts(record, tuple(keys), store), T0)
    if record is None:
        assert derived is None
        return
    assert derived is not None
    stored = {e.key_id for e in (store.current, store.pending, store.previous) if e is not None}
    # The orphan step deletes only keys no store slot holds.
    assert not set(orphans(derived, keys, store)) & stored
    if derived.state is S.CREATED:
        assert orphans(derived, keys, store)
    # Retiring the old key needs the store to serve our own entry as current.
    if derived.state in (S.PROMOTED, S.OLD_DEACTIVATED):
        assert store.current is not None
        assert store.current.token == record.token
        old = {k.key_id: k for k in keys}.get(derived.old_key_id or "")
        assert old is not None
        assert old.active is (derived.state is S.PROMOTED)
    if derived.state is S.STORED_PENDING:
        assert store.pending is not None
        assert store.pending.token == record.token
        assert derived.new_key_id == store.pending.key_id
    if record.state in (S.ABORTED, S.ROLLED_BACK):
        assert derived is record
    # Only the state and the new key id ever change.
    assert replace(derived, state=record.state, new_key_id=record.new_key_id) == record


# -- restored: a rollback that put the store back already ----------------------------------


def test_restored_sees_our_entry_moved_to_previous() -> None:
    record = record_in(S.OLD_DEACTIVATED, new_key_id="AKIAJOURNAL")
    store = StoreView(current=StoredEntry("before", OLD.key_id), previous=StoredEntry("tok", NEW))
    assert restored(facts(record, OLD, store=store)) == replace(
        record, state=S.PROMOTED, new_key_id=NEW
    )
    unread = StoreView(current=StoredEntry("before", OLD.key_id), previous=StoredEntry("tok"))
    back = restored(facts(record, OLD, store=unread))
    assert back is not None
    assert back.new_key_id == "AKIAJOURNAL"
    assert restored(facts(record, OLD, store=StoreView(previous=StoredEntry("tok", NEW)))) == (
        replace(record, state=S.PROMOTED, new_key_id=NEW)
    )


@pytest.mark.parametrize(
    "store",
    [
        StoreView(),
        StoreView(current=StoredEntry("tok", NEW)),
        StoreView(current=StoredEntry("before", OLD.key_id), previous=StoredEntry("x", NEW)),
        StoreView(current=StoredEntry("tok", NEW), previous=StoredEntry("tok", NEW)),
    ],
)
def test_restored_is_none_without_that_shape(store: StoreView) -> None:
    assert restored(facts(record_in(S.PROMOTED), OLD, store=store)) is None


@pytest.mark.parametrize("state", TERMINAL)
def test_restored_is_none_for_an_ended_rotation(state: RotationState) -> None:
    store = StoreView(current=StoredEntry("before", OLD.key_id), previous=StoredEntry("tok", NEW))
    assert restored(facts(record_in(state), OLD, store=store)) is None
    assert restored(facts(None, OLD, store=store)) is None


# -- plan_start ----------------------------------------------------------------------------


def test_one_key_is_replaced_and_nothing_retired() -> None:
    assert plan_start("alice", [OLD], set()) == StartPlan(user="alice", old_key_id=OLD.key_id)


def test_three_keys_are_refused_with_their_count() -> None:
    keys = [key("AKIA1"), key("AKIA2", active=False), key("AKIA3", active=False)]
    with pytest.raises(OperationFailedError) as caught:
        plan_start("alice", keys, set())
    assert str(caught.value) == "alice has 3 keys; IAM allows 2"


@pytest.mark.parametrize("order", [1, -1])
def test_with_both_keys_inactive_the_older_is_retired(order: int) -> None:
    older = key("AKIAOLDER", active=False, at=T0 - timedelta(days=30))
    newer = key("AKIANEWER", active=False, at=T0 - timedelta(days=1))
    plan = plan_start("alice", [older, newer][::order], set())
    assert plan == StartPlan(user="alice", old_key_id="AKIANEWER", retire_first="AKIAOLDER")


def test_the_refusal_names_both_keys_and_what_to_do() -> None:
    keys = [key("AKIA1"), key("AKIA2")]
    with pytest.raises(OperationFailedError) as caught:
        plan_start("alice", keys, set())
    assert str(caught.value) == (
        "alice already has 2 access keys (AKIA1 (Active), AKIA2 (Active)) and neither is an "
        "inactive key keyturn may retire: deactivate the one no longer in use, then run again"
    )


# -- rollback and the old key's mark (v5) ---------------------------------------------------


@given(
    active_at_intent=st.booleans(),
    marked=st.booleans(),
    active_now=st.booleans(),
    state=st.sampled_from([S.PROMOTED, S.OLD_DEACTIVATED]),
)
def test_rollback_serves_the_old_key_only_if_it_was_active_and_ours_to_turn_off(
    active_at_intent: bool, marked: bool, active_now: bool, state: RotationState
) -> None:
    """Whatever happened in between (this rotation marking it, someone turning it off or
    on), through the journal's text form: a key inactive at intent is never served again,
    and one active then is reactivated only under this rotation's own mark."""
    record = begin("alice", "tok", [key(OLD.key_id, active=active_at_intent)], OLD.key_id, T0)
    if marked:
        record = retiring(record)
    read = decode("alice", encode(replace(record, state=state)))
    refusal = rollback_refusal(read, active_now)
    assert (refusal is None) is (active_at_intent and (marked or active_now))


@pytest.mark.parametrize(
    ("mark", "active_now", "refusal"),
    [
        (
            OldKey.INACTIVE,
            True,
            "was already inactive when this rotation started (quarantined as exposed, or "
            "deactivated by hand), so a rollback never serves it again",
        ),
        (
            OldKey.ACTIVE,
            False,
            "was deactivated by someone other than this rotation (a quarantine?), so a "
            "rollback never reactivates it",
        ),
        (OldKey.ACTIVE, True, None),
        (OldKey.RETIRING, False, None),
        (None, False, None),  # before v5: no mark, the incident record check only
    ],
)
def test_a_rollback_refusal_word_for_word(
    mark: OldKey | None, active_now: bool, refusal: str | None
) -> None:
    record = record_in(S.OLD_DEACTIVATED, old_mark=mark)
    assert rollback_refusal(record, active_now) == refusal


@pytest.mark.parametrize("mark", [OldKey.INACTIVE, OldKey.RETIRING, None])
def test_retiring_marks_only_an_old_key_that_was_active(mark: OldKey | None) -> None:
    record = record_in(S.PROMOTED, old_mark=mark)
    assert retiring(record) is record
    active = record_in(S.PROMOTED, old_mark=OldKey.ACTIVE)
    assert retiring(active) == replace(active, old_mark=OldKey.RETIRING)


def test_begin_marks_the_old_key_it_names_not_another() -> None:
    off = key("AKIAOFF0000000000000", active=False)
    assert begin("alice", "t", [OLD, off], off.key_id, T0).old_mark is OldKey.INACTIVE
    assert begin("alice", "t", [off, OLD], OLD.key_id, T0).old_mark is OldKey.ACTIVE
    assert begin("alice", "t", [off], OLD.key_id, T0).old_mark is None  # not among the keys


# -- the journal's text form ---------------------------------------------------------------

times = st.integers(0, 2**33).map(lambda s: datetime.fromtimestamp(s, tz=UTC))
ids = st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True)
full_records = st.builds(
    RotationRecord,
    user=st.from_regex(r"[\w+=,.@-]{1,64}", fullmatch=True),
    token=st.from_regex(r"[A-Za-z0-9-]{1,64}", fullmatch=True),
    state=st.sampled_from(list(S)),
    intent_at=times,
    old_key_id=st.one_of(st.none(), ids),
    existing=st.lists(ids, max_size=2).map(tuple),
    new_key_id=st.one_of(st.none(), ids),
    hold_until=st.one_of(st.none(), times),
    promoted_at=st.one_of(st.none(), times),
    unpublished=st.lists(st.sampled_from(list(Unpublished)), unique=True).map(tuple),
    old_mark=st.one_of(st.none(), st.sampled_from(list(OldKey))),
)


@given(full_records)
def test_encode_decode_round_trips_every_field(record: RotationRecord) -> None:
    text = encode(record)
    assert text.startswith("v5:")
    assert len(text.split(":")) == 11
    assert decode(record.user, text) == record


def test_a_sealed_v2_record_is_still_read_without_a_promotion_time() -> None:
    text = f"v2:promoted:tok-2:{int(T0.timestamp())}:AKIAOLD:AKIAOLD/AKIAX:AKIANEW:-"
    assert decode("alice", text) == RotationRecord(
        user="alice",
        token="tok-2",
        state=S.PROMOTED,
        intent_at=T0,
        old_key_id="AKIAOLD",
        existing=("AKIAOLD", "AKIAX"),
        new_key_id="AKIANEW",
        hold_until=None,
        promoted_at=None,
    )
    empty = decode("alice", f"v2:intent:t:{int(T0.timestamp())}:-:-:-:-")
    assert (empty.old_key_id, empty.existing, empty.new_key_id) == (None, (), None)


@pytest.mark.parametrize(
    "text",
    [
        "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW",  # 7 parts: no version reads it
        "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-",  # 9 parts under v2
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-",  # 8 parts under v3
        "v1:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-",
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:",  # an empty promotion time
        "v3:promoted:tok:1767225600:AKIAOLD::AKIANEW:-:-",  # empty existing
        "v3:promoted:tok:1767225600:AKIAOLD:-::-:-",  # empty new key
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW::-",  # empty hold
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:soon",
        "v3:finished:tok:1767225600:AKIAOLD:-:AKIANEW:-:-",
    ],
)
def test_decode_refuses_other_shapes(text: str) -> None:
    with pytest.raises(BadInputError):
        decode("alice", text)


def test_the_unreadable_message_quotes_the_first_80_characters() -> None:
    text = "v9:" + "x" * 120
    with pytest.raises(BadInputError) as caught:
        decode("alice", text)
    assert str(caught.value) == f"alice: unreadable rotation journal entry {text[:80]!r}"


def test_the_v5_text_form_is_exact() -> None:
    """The journal is read back by later versions of keyturn: its letters and order are a
    format, not an implementation detail (a round trip alone would accept any spelling)."""
    epoch = int(T0.timestamp())
    record = RotationRecord(
        user="alice",
        token="tok",
        state=S.OLD_DEACTIVATED,
        intent_at=T0,
        old_key_id="AKIAOLD",
        existing=("AKIAOLD", "AKIAX"),
        new_key_id="AKIANEW",
        hold_until=T0 + timedelta(seconds=1),
        promoted_at=T0 + timedelta(seconds=2),
        unpublished=(Unpublished.ROTATED, Unpublished.RETIRED),
        old_mark=OldKey.RETIRING,
    )
    assert encode(record) == (
        f"v5:old_deactivated:tok:{epoch}:AKIAOLD:AKIAOLD/AKIAX:AKIANEW:{epoch + 1}:{epoch + 2}:RD:r"
    )
    assert encode(replace(record, unpublished=(Unpublished.RETIRED,))).endswith(":D:r")
    assert encode(replace(record, unpublished=())).endswith(f":{epoch + 2}:-:r")
    marks = {OldKey.ACTIVE: "a", OldKey.INACTIVE: "i", OldKey.RETIRING: "r", None: "-"}
    for mark, letter in marks.items():
        assert encode(replace(record, old_mark=mark)).endswith(f":RD:{letter}")
    owed = f"v5:promoted:tok:{epoch}:AKIAOLD:-:AKIANEW:-:-:"
    assert decode("alice", owed + "DR:-").unpublished == (
        Unpublished.RETIRED,
        Unpublished.ROTATED,
    )
    assert decode("alice", owed + "RR:-").unpublished == (Unpublished.ROTATED,)
    assert decode("alice", owed + "-:-").unpublished == ()
    for mark, letter in marks.items():
        assert decode("alice", owed + "-:" + letter).old_mark is mark


@pytest.mark.parametrize(
    "text",
    [
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-",  # 10 parts under v5
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:a:-",  # 12 parts
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:",  # an empty mark
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:x",  # an unknown mark
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:A",  # marks are lower case
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:ar",  # one mark, one letter
        "v4:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:a",  # 11 parts under v4
    ],
)
def test_decode_refuses_other_v5_shapes(text: str) -> None:
    with pytest.raises(BadInputError):
        decode("alice", text)


def test_a_sealed_v4_record_is_read_in_full() -> None:
    """v4 (before the old-key mark): every field as written, and no mark."""
    epoch = int(T0.timestamp())
    text = (
        f"v4:old_deactivated:tok:{epoch}:AKIAOLD:AKIAOLD/AKIAX:AKIANEW:{epoch + 1}:{epoch + 2}:RD"
    )
    assert decode("alice", text) == RotationRecord(
        user="alice",
        token="tok",
        state=S.OLD_DEACTIVATED,
        intent_at=T0,
        old_key_id="AKIAOLD",
        existing=("AKIAOLD", "AKIAX"),
        new_key_id="AKIANEW",
        hold_until=T0 + timedelta(seconds=1),
        promoted_at=T0 + timedelta(seconds=2),
        unpublished=(Unpublished.ROTATED, Unpublished.RETIRED),
        old_mark=None,
    )
    owed = f"v4:promoted:tok:{epoch}:AKIAOLD:-:AKIANEW:-:-:"
    assert decode("alice", owed + "DR").unpublished == (Unpublished.RETIRED, Unpublished.ROTATED)
    assert decode("alice", owed + "RR").unpublished == (Unpublished.ROTATED,)
    assert decode("alice", owed + "-").unpublished == ()


def test_a_sealed_v3_record_is_read_in_full() -> None:
    epoch = int(T0.timestamp())
    text = f"v3:promoted:tok:{epoch}:AKIAOLD:-:AKIANEW:{epoch + 1}:{epoch + 2}"
    assert decode("alice", text) == RotationRecord(
        user="alice",
        token="tok",
        state=S.PROMOTED,
        intent_at=T0,
        old_key_id="AKIAOLD",
        existing=(),
        new_key_id="AKIANEW",
        hold_until=T0 + timedelta(seconds=1),
        promoted_at=T0 + timedelta(seconds=2),
    )
