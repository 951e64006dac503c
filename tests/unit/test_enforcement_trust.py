"""State tags and Contact tags are claims (issue 12): the planner's checks, at their edges.

Pure: a fixed clock, no server. The same attacks against moto's IAM and SES are in
tests/integration/test_enforce_hostile_tags.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.domain.enforcement import (
    EMAIL,
    Action,
    EnforcementSettings,
    FlagKind,
    KeyRecord,
    Notice,
    SkipReason,
    Step,
    UserFacts,
    needs_a_look,
    plan,
    recipients_of,
    state_tag,
)
from keyturn.domain.policy import PolicySettings
from keyturn.notices import Templates
from tests.unit.test_enforcement_plan import KEY, NOW, RULES, TODAY, days_ago, key, user

LURE = "keyturn:enforce:URGENT your access is suspended re-verify at https://evil.example/x"


def one(facts: UserFacts, rules: EnforcementSettings = RULES, now: datetime = NOW):  # type: ignore[no-untyped-def]
    return plan([facts], now, rules)


# -- dates: not in the future, not before the key ----------------------------------------


@pytest.mark.parametrize(
    ("value", "believed"),
    [
        (f"notified@{days_ago(0)}", True),  # today: fine
        (f"notified@{(TODAY + timedelta(days=1)).isoformat()}", False),  # tomorrow at 08:00
        ("notified@2099-01-01", False),  # the forged far future of issue 12
    ],
)
def test_a_notice_dated_in_the_future_is_not_believed(value: str, believed: bool) -> None:
    result = one(user(key(400), records={KEY: value}))
    assert bool(result.flags) is not believed
    if believed:
        assert result.skips[0].why is SkipReason.WAITING
    else:
        assert result.flags[0].kind is FlagKind.IMPLAUSIBLE
        assert "in the future" in result.flags[0].detail
        # not hidden: the 400-day key is warned today, deactivated a grace period later
        [step] = result.steps
        assert (step.action, step.deadline) == (Action.NOTIFY, TODAY + timedelta(days=7))
        assert step.record == KeyRecord()


def test_tomorrow_is_within_clock_skew_just_before_midnight() -> None:
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    old = replace(key(0), created=late - timedelta(days=400))
    value = "notified@2026-03-11"  # written by another keyturn whose clock is ahead
    assert not one(user(old, records={KEY: value}), now=late).flags


@pytest.mark.parametrize(
    ("value", "believed"),
    [
        (f"inactive@{days_ago(60)}", True),  # the day the key was created
        (f"inactive@{days_ago(61)}", False),  # the day before
        (f"deactivated@{days_ago(400)}", False),
    ],
)
def test_a_mark_from_before_the_key_existed_is_not_believed(value: str, believed: bool) -> None:
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=14))
    result = one(user(key(60, active=False, used_days_ago=None), records={KEY: value}), rules)
    assert bool(result.flags) is not believed
    [step] = result.steps
    # believed: inactive for 60 days, deleted; not believed: the deletion clock starts today
    assert step.action is (Action.DELETE if believed else Action.RECORD)


def test_a_deletion_clock_older_than_the_keys_last_use_is_not_believed() -> None:
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=14))
    used_yesterday = key(90, active=False, used_days_ago=1)
    result = one(user(used_yesterday, records={KEY: f"inactive@{days_ago(30)}"}), rules)
    assert [flag.kind for flag in result.flags] == [FlagKind.IMPLAUSIBLE]
    assert [step.action for step in result.steps] == [Action.RECORD]


def test_a_back_dated_notice_before_the_key_existed_cannot_deactivate_it() -> None:
    result = one(user(key(20), records={KEY: f"notified@{days_ago(40)}"}), RULES)
    assert result.steps == ()  # 20 days old: not due, and the forged tag changes nothing
    forged = one(user(key(40), records={KEY: f"notified@{days_ago(41)}"}))
    assert [step.action for step in forged.steps] == [Action.NOTIFY]
    assert forged.flags[0].kind is FlagKind.IMPLAUSIBLE


def test_residual_risk_a_plausible_back_dated_notice_still_shortens_the_warning() -> None:
    """Documented in keyturn.domain.enforcement: a date after the key became due and before
    today cannot be told from keyturn's own. The owner is still told at deactivation."""
    [step] = one(user(key(400), records={KEY: f"notified@{days_ago(7)}"})).steps
    assert step.action is Action.DEACTIVATE
    assert step.notice is Notice.DEACTIVATED
    assert step.recipients == ("alice@example.com",)


# -- tag keys: a current key id of that user, or nothing ----------------------------------


def test_a_tag_key_that_is_no_key_id_is_flagged_ignored_and_never_mailed_or_removed() -> None:
    facts = user(key(3), tags={LURE: f"deleted@{days_ago(1)}"})
    result = one(facts)
    assert result.steps == ()
    assert [flag.kind for flag in result.flags] == [FlagKind.BAD_KEY_ID]
    assert len(result.flags[0].tag) <= 62  # shortened for the operator's screen


@pytest.mark.parametrize(
    "key_id", ["akiaaaaaaaaaaaaaaaaa", "AKIA", "AKIA AAAA", "ABIAAAAAAAAAAAAAAAAA", "AKIA-x"]
)
def test_only_access_key_ids_are_key_ids(key_id: str) -> None:
    result = one(user(key(3), records={key_id: f"notified@{days_ago(1)}"}))
    assert result.steps == ()
    assert [flag.kind for flag in result.flags] == [FlagKind.BAD_KEY_ID]


def test_a_key_id_the_user_does_not_have_is_removed_without_a_mail() -> None:
    other = "ASIAZZZZZZZZZZZZZZZZ"
    [step] = one(
        user(key(3), records={other: f"deleted@{days_ago(1)} notified@{days_ago(9)}"})
    ).steps
    assert (step.action, step.key_id, step.notice, step.recipients) == (
        Action.FORGET,
        other,
        None,
        (),
    )


# -- recipients: plain addresses, capped ----------------------------------------------------


def test_recipients_are_capped_and_the_rest_reported() -> None:
    many = "ceo@example.com cfo@example.com all-staff@example.com it@example.com"
    result = one(user(key(31), contact=many))
    [step] = result.steps
    assert step.recipients == ("ceo@example.com", "cfo@example.com")
    assert [flag.kind for flag in result.flags] == [FlagKind.CONTACT]
    assert "only the first 2" in result.flags[0].detail
    wider = EnforcementSettings(max_recipients=3)
    assert len(one(user(key(31), contact=many), wider).steps[0].recipients) == 3


def test_the_same_address_twice_counts_once() -> None:
    to, warnings = recipients_of({"Contact": "a@example.com A@EXAMPLE.COM"}, "Contact", None)
    assert to == ("a@example.com",)
    assert warnings == []


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("alice@example.com", True),
        ("first.last+keys@sub.example.co.uk", True),
        ("a_b-c@example-1.org", True),
        ("alice@example", False),
        ("alice@@example.com", False),
        ("a%b@example.com", False),
        ("https://evil.example/x@example.com", False),
        ("a=b@example.com", False),
        ("a:b@example.com", False),
        (".alice@example.com", False),
        ("alice.@example.com", False),
        ("alice@-example.com", False),
        ("alice@example.c0m", False),
        ("a" * 250 + "@example.com", False),
    ],
)
def test_only_plain_addresses_are_addresses(address: str, valid: bool) -> None:
    assert bool(EMAIL.match(address)) is valid


def test_max_recipients_must_be_sensible() -> None:
    assert any("max_recipients" in p for p in EnforcementSettings(max_recipients=0).problems())
    assert not EnforcementSettings(max_recipients=50).problems()


def test_a_mail_refuses_what_the_planner_should_have_dropped() -> None:
    templates = Templates.load()
    bad = Step("alice", "URGENT re-verify", Action.RESEND, "x", KeyRecord(), notice=Notice.DELETED)
    with pytest.raises(ValueError, match="refusing"):
        templates.compose("alice@example.com", [bad], "keys@example.com", TODAY)
    good = Step("alice", KEY, Action.NOTIFY, "31 days old", KeyRecord(), notice=Notice.WARNING)
    with pytest.raises(ValueError, match="refusing"):
        templates.compose("all@staff@example.com", [good], "keys@example.com", TODAY)


# -- skipped keys are named, with what happens next -------------------------------------------


def test_a_key_without_contact_is_named_with_what_happens_next() -> None:
    result = one(user(key(500), contact=None))
    [skip] = result.unattended
    assert (skip.why, skip.key_id, skip.age_days) == (SkipReason.NO_CONTACT, KEY, 500)
    assert "deactivate_without_notice" in skip.next
    strict = EnforcementSettings(deactivate_without_notice=True)
    assert [s.action for s in one(user(key(500), contact=None), strict).steps] == [
        Action.DEACTIVATE
    ]
    [soon] = one(user(key(33), contact=None), strict).skips
    assert soon.next.startswith(f"deactivated without notice on {TODAY + timedelta(days=4)}")


def test_waiting_and_exempt_keys_are_not_unattended() -> None:
    rules = EnforcementSettings(policy=PolicySettings(exempt_tags={"keyturn:exempt": "true"}))
    exempt = one(user(key(400), tags={"keyturn:exempt": "true"}), rules)
    waiting = one(user(key(36), records={KEY: f"notified@{days_ago(6)}"}))
    assert exempt.skips
    assert not exempt.unattended
    assert waiting.skips
    assert not waiting.unattended
    assert waiting.skips[0].next == f"deactivated on {TODAY + timedelta(days=1)} unless rotated"


# -- leftovers -------------------------------------------------------------------------------


def test_a_user_with_a_brand_new_key_is_read_for_leftover_tags() -> None:
    assert needs_a_look([key(3)], NOW, RULES)
    assert not needs_a_look([key(3)], NOW, RULES, recent=False)
    assert not needs_a_look([key(8)], NOW, RULES)


def test_state_tag_format_is_what_the_planner_accepts() -> None:
    assert state_tag(KEY) == f"keyturn:enforce:{KEY}"
