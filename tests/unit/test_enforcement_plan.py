"""The enforcement planner's boundaries: pure, a fixed clock, no server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.enforcement import (
    Action,
    EnforcementSettings,
    FlagKind,
    KeyRecord,
    MalformedRecordError,
    Mark,
    Notice,
    SealedState,
    SkipReason,
    UserFacts,
    needs_a_look,
    plan,
    recipients_of,
    state_tag,
)
from keyturn.domain.model import AccessKey, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
KEY = "AKIAAAAAAAAAAAAAAAAA"
RULES = EnforcementSettings()


def key(
    age_days: float,
    *,
    active: bool = True,
    used_days_ago: float | None = 0,
    key_id: str = KEY,
    user: str = "alice",
) -> AccessKey:
    return AccessKey(
        account="123456789012",
        user=user,
        slot=1,
        status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
        created=NOW - timedelta(days=age_days),
        last_used=None if used_days_ago is None else LastUse(NOW - timedelta(days=used_days_ago)),
        key_id=key_id,
    )


def user(
    *keys: AccessKey,
    contact: str | None = "alice@example.com",
    records: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    groups: frozenset[str] = frozenset(),
) -> UserFacts:
    """`records`: state tags whose seal the service verified (the planner's only input for
    marks); `tags` may hold state tags too, whose seal nobody checked."""
    all_tags = dict(tags or {})
    if contact is not None:
        all_tags["Contact"] = contact
    for key_id, value in (records or {}).items():
        all_tags[state_tag(key_id)] = value
    states = {key_id: SealedState(value) for key_id, value in (records or {}).items()}
    return UserFacts(user="alice", tags=all_tags, keys=keys, groups=groups, states=states)


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def only_step(facts: UserFacts, rules: EnforcementSettings = RULES):  # type: ignore[no-untyped-def]
    result = plan([facts], NOW, rules)
    assert not result.flags
    assert len(result.steps) == 1, (result.steps, result.skips)
    return result.steps[0]


# -- notify ---------------------------------------------------------------------------


def test_a_key_below_the_threshold_is_untouched() -> None:
    result = plan([user(key(29.9))], NOW, RULES)
    assert result.empty
    assert not result.skips
    assert result.ok == 1


def test_a_key_at_30_days_is_notified_with_a_deadline_grace_days_away() -> None:
    step = only_step(user(key(30)))
    assert step.action is Action.NOTIFY
    assert step.notice is Notice.WARNING
    assert step.deadline == TODAY + timedelta(days=7)
    assert step.recipients == ("alice@example.com",)


def test_a_notified_key_waits_until_the_deadline() -> None:
    facts = user(key(36), records={KEY: f"notified@{days_ago(6)}"})
    result = plan([facts], NOW, RULES)
    assert result.empty
    assert [skip.why for skip in result.skips] == [SkipReason.WAITING]
    assert result.skips[0].deadline == TODAY + timedelta(days=1)


# -- deactivate -------------------------------------------------------------------------


def test_deactivated_when_the_notice_went_out_grace_days_ago() -> None:
    step = only_step(user(key(37), records={KEY: f"notified@{days_ago(7)}"}))
    assert step.action is Action.DEACTIVATE
    assert step.notice is Notice.DEACTIVATED


def test_a_key_past_the_deadline_never_notified_is_notified_not_deactivated() -> None:
    step = only_step(user(key(90)))
    assert step.action is Action.NOTIFY
    assert step.deadline == TODAY + timedelta(days=7)
    assert "never notified" in step.reason


def test_a_notice_from_before_the_key_became_due_does_not_count() -> None:
    # notified 40 days ago, but the key only became due 10 days ago: not a warning for it
    step = only_step(user(key(40), records={KEY: f"notified@{days_ago(40)}"}))
    assert step.action is Action.NOTIFY


def test_deactivate_without_notice_when_configured() -> None:
    rules = EnforcementSettings(deactivate_without_notice=True)
    assert only_step(user(key(37)), rules).action is Action.DEACTIVATE
    assert only_step(user(key(36)), rules).action is Action.NOTIFY


def test_a_user_without_contact_and_no_fallback_is_skipped_not_deactivated() -> None:
    result = plan([user(key(90), contact=None)], NOW, RULES)
    assert result.empty
    assert [skip.why for skip in result.skips] == [SkipReason.NO_CONTACT]


def test_an_untagged_user_goes_to_the_fallback_contact() -> None:
    rules = EnforcementSettings(fallback_contact="secops@example.com")
    step = only_step(user(key(31), contact=None), rules)
    assert step.recipients == ("secops@example.com",)


def test_notices_off_never_deactivates_without_the_explicit_setting() -> None:
    result = plan([user(key(90))], NOW, EnforcementSettings(notify=False))
    assert result.empty
    assert result.skips[0].why is SkipReason.NOTICES_OFF


# -- remind -------------------------------------------------------------------------------


def test_reminders_every_n_days_until_the_deadline() -> None:
    rules = EnforcementSettings(remind_every_days=3)
    notified = {KEY: f"notified@{days_ago(3)}"}
    step = only_step(user(key(33), records=notified), rules)
    assert step.action is Action.REMIND
    assert step.deadline == TODAY + timedelta(days=4)
    reminded = {KEY: f"notified@{days_ago(5)} reminded@{days_ago(2)}"}
    assert plan([user(key(35), records=reminded)], NOW, rules).empty


# -- unused, never used -----------------------------------------------------------------


def test_unused_keys_are_due_before_the_age_limit() -> None:
    rules = EnforcementSettings(policy=PolicySettings(unused_after_days=10))
    step = only_step(user(key(12, used_days_ago=11)), rules)
    assert step.action is Action.NOTIFY
    assert "unused for 11 days" in step.reason
    assert plan([user(key(12, used_days_ago=9))], NOW, rules).empty


def test_never_used_keys_have_their_own_threshold() -> None:
    rules = EnforcementSettings(never_used_after_days=5)
    assert "never used" in only_step(user(key(5, used_days_ago=None)), rules).reason
    assert plan([user(key(4, used_days_ago=None))], NOW, rules).empty


# -- delete and the notices that are still owed -------------------------------------------


def test_inactive_key_is_deleted_delete_after_days_after_deactivation() -> None:
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=14))
    record = f"notified@{days_ago(21)} deactivated@{days_ago(14)} told-deactivated@{days_ago(14)}"
    step = only_step(user(key(60, active=False, used_days_ago=30), records={KEY: record}), rules)
    assert step.action is Action.DELETE
    assert step.notice is Notice.DELETED
    younger = f"notified@{days_ago(20)} deactivated@{days_ago(13)} told-deactivated@{days_ago(13)}"
    assert plan(
        [user(key(60, active=False, used_days_ago=30), records={KEY: younger})], NOW, rules
    ).empty


def test_an_inactive_key_keyturn_did_not_deactivate_is_recorded_first() -> None:
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=14))
    step = only_step(user(key(60, active=False, used_days_ago=30)), rules)
    assert step.action is Action.RECORD
    assert step.deadline == TODAY + timedelta(days=14)
    assert (
        plan([user(key(60, active=False, used_days_ago=30))], NOW, RULES).ok == 1
    )  # no deletion configured


def test_a_deactivation_notice_ses_did_not_accept_is_resent() -> None:
    record = {KEY: f"notified@{days_ago(8)} deactivated@{days_ago(1)}"}
    step = only_step(user(key(38, active=False, used_days_ago=30), records=record))
    assert step.action is Action.RESEND
    assert step.notice is Notice.DEACTIVATED


def test_state_of_a_key_that_no_longer_exists_is_forgotten() -> None:
    step = only_step(user(key(3), records={"AKIAGONEGONEGONEGONE": f"notified@{days_ago(9)}"}))
    assert step.action is Action.FORGET
    assert step.key_id == "AKIAGONEGONEGONEGONE"


def test_a_deleted_mark_on_a_key_that_is_gone_is_forgotten_never_mailed() -> None:
    # The deletion notice is accepted before the key is deleted: nothing is owed, and
    # re-mailing on the tag's word was the relay of issue 12.
    step = only_step(user(records={"AKIAGONEGONEGONEGONE": f"deleted@{days_ago(1)}"}))
    assert step.action is Action.FORGET
    assert step.notice is None
    assert step.recipients == ()


# -- exemptions and bad tags ------------------------------------------------------------


def test_exempt_by_tag_or_group_is_skipped_with_the_reason() -> None:
    rules = EnforcementSettings(
        policy=PolicySettings(
            exempt_tags={"keyturn:exempt": "true"}, exempt_groups=frozenset({"ci"})
        )
    )
    by_tag = plan([user(key(400), tags={"keyturn:exempt": "TRUE"})], NOW, rules)
    by_group = plan([user(key(400), groups=frozenset({"ci"}))], NOW, rules)
    for result in (by_tag, by_group):
        assert result.empty
        assert result.skips[0].why is SkipReason.EXEMPT
    assert "group ci" in by_group.skips[0].reason
    assert not plan([user(key(400), tags={"keyturn:exempt": "false"})], NOW, rules).empty


def test_a_malformed_state_value_is_flagged_and_the_key_restarts_its_cycle() -> None:
    bob = UserFacts(
        user="bob",
        tags={"Contact": "bob@example.com"},
        keys=(key(40, user="bob", key_id="AKIABBBBBBBBBBBBBBBB"),),
    )
    result = plan([user(key(90), records={KEY: "notified yesterday"}), bob], NOW, RULES)
    assert [(flag.user, flag.kind) for flag in result.flags] == [("alice", FlagKind.MALFORMED)]
    assert "notified yesterday" in result.flags[0].line
    assert [(step.user, step.action) for step in result.steps] == [
        ("alice", Action.NOTIFY),  # not hidden, not deactivated: warned from today
        ("bob", Action.NOTIFY),  # the run goes on for everyone else
    ]
    assert result.steps[0].record == KeyRecord()  # the next write replaces the bad value


def test_a_non_boolean_exemption_skips_that_user_by_name_and_flags_it() -> None:
    rules = EnforcementSettings(policy=PolicySettings(exempt_tags={"keyturn:exempt": "true"}))
    bob = UserFacts("bob", {"Contact": "bob@example.com"}, (key(40, user="bob"),))
    result = plan([user(key(400), tags={"keyturn:exempt": "yes"}), bob], NOW, rules)
    assert [flag.kind for flag in result.flags] == [FlagKind.BAD_EXEMPTION]
    assert [(skip.user, skip.why, skip.age_days) for skip in result.skips] == [
        ("alice", SkipReason.BAD_EXEMPTION, 400)
    ]
    assert result.unattended == result.skips
    assert [step.user for step in result.steps] == ["bob"]


def test_invalid_contact_addresses_are_warnings_and_the_rest_are_used() -> None:
    to, warnings = recipients_of({"Contact": "a@example.com nope b@example.org"}, "Contact", None)
    assert to == ("a@example.com", "b@example.org")
    assert warnings == ["Contact tag has an invalid address 'nope'"]
    to, _ = recipients_of({"Contact": "nope"}, "Contact", "fallback@example.com")
    assert to == ("fallback@example.com",)


# -- the record format and the settings --------------------------------------------------


def test_record_round_trips_within_iam_tag_limits() -> None:
    record = KeyRecord()
    for mark in Mark:
        record = record.marked(mark, date(2026, 12, 31))
    value = record.encode()
    assert KeyRecord.decode(value) == record
    assert len(value) <= 256
    assert len(state_tag("AKIA" + "X" * 16)) <= 128
    assert set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789-@ ")


@given(st.text(max_size=40))
def test_decode_rejects_anything_it_did_not_write(value: str) -> None:
    try:
        record = KeyRecord.decode(value)
    except MalformedRecordError:
        return
    assert KeyRecord.decode(record.encode()) == record


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        (EnforcementSettings(policy=PolicySettings(grace_days=0)), "grace_days"),
        (EnforcementSettings(policy=PolicySettings(delete_after_days=0)), "delete_after_days"),
        (EnforcementSettings(remind_every_days=7), "remind_every_days"),
        (EnforcementSettings(fallback_contact="nobody"), "fallback_contact"),
    ],
)
def test_thresholds_that_make_no_sense_are_problems(
    rules: EnforcementSettings, fragment: str
) -> None:
    assert any(fragment in problem for problem in rules.problems())


def test_only_users_with_due_or_inactive_keys_need_a_look() -> None:
    assert not needs_a_look([key(10), key(29)], NOW, RULES)
    assert needs_a_look([key(10), key(30)], NOW, RULES)
    assert needs_a_look([key(1, active=False)], NOW, RULES)
