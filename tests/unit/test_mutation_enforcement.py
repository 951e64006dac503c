"""The enforcement planner's outputs in full, where mutation testing found fields untested.

Older tests checked the action a key gets; these check every field of every step, skip and
flag in a few rich scenarios (the key id and user of a deactivation, the notice and
recipients when notices are off or nobody can be told, the texts the operator reads), the
rule whose date starts the deadline when two apply, and the boundaries of the settings
check, of `shown` and of the state tag format (issue 18). The expected values are written
out: they are what `enforce` prints and what the audit trail records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from keyturn.domain.enforcement import (
    Action,
    EnforcementSettings,
    Flag,
    FlagKind,
    KeyRecord,
    MalformedRecordError,
    Notice,
    SealedState,
    Skip,
    SkipReason,
    Step,
    UserFacts,
    due_rule,
    needs_a_look,
    plan,
    plausibility,
    recipients_of,
    shown,
    state_tag,
)
from keyturn.domain.model import AccessKey, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings
from keyturn.domain.trust import Rejected

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
MAIL = ("alice@example.com",)


def key(
    key_id: str,
    age_days: float,
    *,
    active: bool = True,
    used_days_ago: float | None = 0,
    user: str = "alice",
) -> AccessKey:
    return AccessKey(
        account="123456789012",
        user=user,
        slot=1,
        status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
        created=NOW - timedelta(days=age_days),
        # an inactive key here was last used before anything was recorded about it
        last_used=None
        if used_days_ago is None or not active
        else LastUse(NOW - timedelta(days=used_days_ago)),
        key_id=key_id,
    )


def facts(
    name: str,
    *keys: AccessKey,
    contact: str | None = "alice@example.com",
    sealed: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    groups: frozenset[str] = frozenset(),
) -> UserFacts:
    all_tags = dict(tags or {})
    if contact is not None:
        all_tags["Contact"] = contact
    for key_id, marks in (sealed or {}).items():
        all_tags[state_tag(key_id)] = marks
    states = {key_id: SealedState(marks) for key_id, marks in (sealed or {}).items()}
    return UserFacts(user=name, tags=all_tags, keys=keys, groups=groups, states=states)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


# -- the bug: an invalid exemption tag reports its own value -------------------------------


def test_a_bad_exemption_tag_is_reported_with_its_own_value() -> None:
    rules = EnforcementSettings(
        policy=PolicySettings(exempt_tags={"Exempt": "true", "Keep": "true"})
    )
    user = facts(
        "alice",
        key("AKIA0000000000000001", 40),
        key("AKIA0000000000000002", 3),
        tags={"Exempt": "false", "Keep": "bob@example.com"},
    )
    result = plan([user], NOW, rules)
    why = "exemption tag Keep should be true or false, got 'bob@example.com'"
    assert result.flags == (
        Flag("alice", FlagKind.BAD_EXEMPTION, "Keep", f"{why}; its keys are skipped"),
    )
    next_ = "not acted on until Keep is true or false; fix or remove the tag"
    assert result.skips == (
        Skip("alice", "AKIA0000000000000001", SkipReason.BAD_EXEMPTION, why, 40, None, next_),
        Skip("alice", "AKIA0000000000000002", SkipReason.BAD_EXEMPTION, why, 3, None, next_),
    )
    assert result.steps == ()
    assert result.ok == 0


def test_an_exemption_rule_that_is_no_boolean_does_not_stop_the_check() -> None:
    rules = EnforcementSettings(policy=PolicySettings(exempt_tags={"Team": "*", "Keep": "true"}))
    user = facts("alice", key("AKIA0000000000000001", 3), tags={"Team": "ops", "Keep": "maybe"})
    assert [flag.kind for flag in plan([user], NOW, rules).flags] == [FlagKind.BAD_EXEMPTION]


# -- state tags are claims: every flag in full --------------------------------------------

LONG_BAD = "keyturn:enforce:1" + "x" * 60


def test_every_state_tag_keyturn_does_not_believe_is_flagged_in_full() -> None:
    ka, kb, kc, kd, ke = (f"AKIA{c * 16}" for c in "ABCDE")
    tags = {
        LONG_BAD: "x",
        state_tag("AKIA0000000000000000"): "x",  # a key the user no longer has
        **{state_tag(key_id): "x" for key_id in (ka, kb, kc, kd, ke)},
        "Contact": "alice@example.com not-an-address",
    }
    user = UserFacts(
        user="alice",
        tags=tags,
        keys=tuple(key(key_id, 40) for key_id in (ka, kb, kc, kd, ke)),
        states={  # ka: no seal checked at all
            kb: Rejected("alice", "the seal does not match"),
            kc: SealedState("notified@soon"),
            kd: SealedState(f"notified@{TODAY + timedelta(days=3)}"),
            ke: SealedState(f"notified@{ago(3)}"),
        },
    )
    result = plan([user], NOW, EnforcementSettings())
    restart = "ignored, so the key's notice cycle starts again"
    assert result.flags == (
        Flag(
            "alice",
            FlagKind.BAD_KEY_ID,
            shown(LONG_BAD),
            f"tag {shown(LONG_BAD)} names no access key id; ignored (remove it)",
        ),
        Flag(
            "alice",
            FlagKind.UNSEALED,
            state_tag(ka),
            f"tag {state_tag(ka)} is not keyturn's: its seal was not checked; {restart}",
        ),
        Flag(
            "alice",
            FlagKind.UNSEALED,
            state_tag(kb),
            f"tag {state_tag(kb)} is not keyturn's: the seal does not match; {restart}",
        ),
        Flag(
            "alice",
            FlagKind.MALFORMED,
            state_tag(kc),
            f"tag {state_tag(kc)} has a value keyturn never writes, 'notified@soon'"
            f" ('notified@soon' is not mark@YYYY-MM-DD); {restart}",
        ),
        Flag(
            "alice",
            FlagKind.IMPLAUSIBLE,
            state_tag(kd),
            f"tag {state_tag(kd)} cannot be keyturn's: notified@2026-03-13 is in the future;"
            f" {restart}",
        ),
        Flag(
            "alice",
            FlagKind.CONTACT,
            "Contact",
            "Contact tag has an invalid address 'not-an-address'",
        ),
    )
    assert result.flags[0].line == f"user alice: {result.flags[0].detail}"
    warning = "40 days old (limit 30); past its deadline but never notified, so deactivation"
    deadline = TODAY + timedelta(days=7)
    notify = [
        Step(
            "alice",
            key_id,
            Action.NOTIFY,
            f"{warning} moves to {deadline}",
            KeyRecord(),
            40,
            Notice.WARNING,
            deadline,
            MAIL,
        )
        for key_id in (ka, kb, kc, kd)
    ]
    forget = Step(
        "alice",
        "AKIA0000000000000000",
        Action.FORGET,
        "the key no longer exists; its state tag is removed",
        KeyRecord(),
    )
    assert result.steps == (*notify, forget)
    assert result.skips == (
        Skip(
            "alice",
            ke,
            SkipReason.WAITING,
            f"40 days old (limit 30); notified on {ago(3)}",
            40,
            ago(3) + timedelta(days=7),
            f"deactivated on {ago(3) + timedelta(days=7)} unless rotated",
        ),
    )
    assert result.today == TODAY


# -- every path of the planner, every field ------------------------------------------------


def test_each_kind_of_key_gets_its_step_in_full() -> None:
    rules = EnforcementSettings(
        policy=PolicySettings(delete_after_days=30, exempt_groups=frozenset({"Robots"})),
        remind_every_days=2,
    )
    users = [
        facts(
            "u2",
            key("AKIA0000000000000002", 45),
            sealed={"AKIA0000000000000002": f"notified@{ago(7)}"},
        ),
        facts(
            "u3",
            key("AKIA0000000000000003", 33),
            sealed={"AKIA0000000000000003": f"notified@{ago(3)}"},
        ),
        facts("u5", key("AKIA0000000000000005", 90), groups=frozenset({"Robots"})),
        facts("u6", key("AKIA0000000000000006", 3), key("AKIA0000000000000007", 4)),
        facts(
            "u8",
            key("AKIA0000000000000008", 99, active=False),
            sealed={"AKIA0000000000000008": f"deactivated@{ago(30)}"},
        ),
        facts(
            "u9",
            key("AKIA0000000000000009", 50, active=False),
            sealed={"AKIA0000000000000009": f"deactivated@{ago(2)}"},
        ),
        facts("u10", key("AKIA0000000000000010", 50, active=False)),
        facts(
            "u11",
            key("AKIA0000000000000011", 50, active=False),
            sealed={"AKIA0000000000000011": f"deactivated@{ago(2)} told-deactivated@{ago(2)}"},
        ),
    ]
    result = plan(users, NOW, rules)
    assert result.flags == ()
    record2 = KeyRecord(notified=ago(7))
    record3 = KeyRecord(notified=ago(3))
    record8 = KeyRecord(deactivated=ago(30))
    record9 = KeyRecord(deactivated=ago(2))
    assert result.steps == (
        Step(
            "alice",
            "AKIA0000000000000002",
            Action.DEACTIVATE,
            f"45 days old (limit 30); notified on {ago(7)}",
            record2,
            45,
            Notice.DEACTIVATED,
            TODAY + timedelta(days=30),
            MAIL,
        ),
        Step(
            "alice",
            "AKIA0000000000000003",
            Action.REMIND,
            f"33 days old (limit 30); notified on {ago(3)}, last told on {ago(3)}",
            record3,
            33,
            Notice.REMINDER,
            ago(3) + timedelta(days=7),
            MAIL,
        ),
        Step(
            "alice",
            "AKIA0000000000000008",
            Action.DELETE,
            f"inactive since {ago(30)} (delete after 30 days)",
            record8,
            99,
            Notice.DELETED,
            None,
            MAIL,
        ),
        Step(
            "alice",
            "AKIA0000000000000009",
            Action.RESEND,
            f"deactivated on {ago(2)}; the notice is still owed",
            record9,
            50,
            Notice.DEACTIVATED,
            ago(2) + timedelta(days=30),
            MAIL,
        ),
        Step(
            "alice",
            "AKIA0000000000000010",
            Action.RECORD,
            "inactive; deletion counts 30 days from today",
            KeyRecord(),
            50,
            None,
            TODAY + timedelta(days=30),
        ),
    )
    assert result.skips == (
        Skip(
            "alice",
            "AKIA0000000000000005",
            SkipReason.EXEMPT,
            "member of exempt group Robots",
            90,
            None,
            "never acted on while exempt",
        ),
    )
    assert result.ok == 3  # two young keys, one inactive key already told


def test_with_notices_off_nothing_is_mailed_and_nobody_is_warned() -> None:
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=30), notify=False)
    users = [
        facts("u1", key("AKIA0000000000000001", 31)),
        facts(
            "u2",
            key("AKIA0000000000000002", 45),
            sealed={"AKIA0000000000000002": f"notified@{ago(8)}"},
        ),
        facts(
            "u3",
            key("AKIA0000000000000003", 99, active=False),
            sealed={"AKIA0000000000000003": f"deactivated@{ago(30)}"},
        ),
        facts(
            "u4",
            key("AKIA0000000000000004", 50, active=False),
            sealed={"AKIA0000000000000004": f"deactivated@{ago(2)}"},
        ),
    ]
    result = plan(users, NOW, rules)
    assert result.skips == (
        Skip(
            "alice",
            "AKIA0000000000000001",
            SkipReason.NOTICES_OFF,
            "31 days old (limit 30); notices are off, so not deactivated",
            31,
            None,
            "stays active: turn notices on, or set enforce.deactivate_without_notice=true to"
            " deactivate on schedule",
        ),
    )
    assert [(s.key_id, s.action, s.notice, s.recipients) for s in result.steps] == [
        ("AKIA0000000000000002", Action.DEACTIVATE, None, ()),
        ("AKIA0000000000000003", Action.DELETE, None, ()),
    ]
    assert result.ok == 1  # the deactivated key owes no notice when notices are off


def test_with_no_recipient_no_notice_is_planned() -> None:
    rules = EnforcementSettings(
        policy=PolicySettings(delete_after_days=30), deactivate_without_notice=True
    )
    users = [
        facts("u1", key("AKIA0000000000000001", 40), contact=None),
        facts("u2", key("AKIA0000000000000002", 31), contact="not-an-address"),
        facts(
            "u3",
            key("AKIA0000000000000003", 99, active=False),
            contact=None,
            sealed={"AKIA0000000000000003": f"deactivated@{ago(30)}"},
        ),
        facts(
            "u4",
            key("AKIA0000000000000004", 50, active=False),
            contact=None,
            sealed={"AKIA0000000000000004": f"deactivated@{ago(2)}"},
        ),
    ]
    result = plan(users, NOW, rules)
    assert result.steps == (
        Step(
            "alice",
            "AKIA0000000000000001",
            Action.DEACTIVATE,
            "40 days old (limit 30); deactivating without notice",
            KeyRecord(),
            40,
            None,
            TODAY + timedelta(days=30),
            (),
        ),
        Step(
            "alice",
            "AKIA0000000000000003",
            Action.DELETE,
            f"inactive since {ago(30)} (delete after 30 days)",
            KeyRecord(deactivated=ago(30)),
            99,
            None,
            None,
            (),
        ),
    )
    assert result.skips == (
        Skip(
            "alice",
            "AKIA0000000000000002",
            SkipReason.NO_CONTACT,
            "31 days old (limit 30); no valid Contact address and no fallback contact, so the"
            " owner cannot be warned",
            31,
            None,
            f"deactivated without notice on {ago(1) + timedelta(days=7)}"
            " (enforce.deactivate_without_notice)",
        ),
    )
    assert result.flags == (
        Flag(
            "u2", FlagKind.CONTACT, "Contact", "Contact tag has an invalid address 'not-an-address'"
        ),
    )
    assert result.ok == 1


def test_no_contact_without_deactivation_says_what_would_fix_it() -> None:
    result = plan(
        [facts("u1", key("AKIA0000000000000001", 31), contact=None)], NOW, EnforcementSettings()
    )
    assert result.skips[0].next == (
        "stays active and is named every run until the user has a Contact tag or"
        " notify.fallback_contact is set (or set enforce.deactivate_without_notice=true to"
        " deactivate it on schedule)"
    )


# -- which rule's date starts the deadline --------------------------------------------------


def test_the_rule_broken_first_gives_the_reason_when_two_apply() -> None:
    rules = EnforcementSettings(policy=PolicySettings(unused_after_days=10))
    unused_first = due_rule(key("AKIA0000000000000001", 40, used_days_ago=35), NOW, rules)
    assert unused_first is not None
    assert (unused_first.since, unused_first.why) == (
        NOW - timedelta(days=25),
        "unused for 35 days (limit 10)",
    )
    age_first = due_rule(key("AKIA0000000000000001", 60, used_days_ago=15), NOW, rules)
    assert age_first is not None
    assert (age_first.since, age_first.why) == (NOW - timedelta(days=30), "60 days old (limit 30)")
    never = EnforcementSettings(never_used_after_days=5)
    unused = due_rule(key("AKIA0000000000000001", 12, used_days_ago=None), NOW, never)
    assert unused is not None
    assert (unused.since, unused.why) == (NOW - timedelta(days=7), "never used in 12 days")
    assert due_rule(key("AKIA0000000000000001", 29), NOW, rules) is None


def test_a_notice_from_before_the_key_became_due_is_no_warning() -> None:
    rules = EnforcementSettings(policy=PolicySettings(unused_after_days=10))
    # due (unused) since 5 days ago; a mark from 8 days ago warned about nothing
    user = facts(
        "u",
        key("AKIA0000000000000001", 20, used_days_ago=15),
        sealed={"AKIA0000000000000001": f"notified@{ago(8)}"},
    )
    (step,) = plan([user], NOW, rules).steps
    assert (step.action, step.deadline) == (Action.NOTIFY, TODAY + timedelta(days=7))


# -- boundaries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (EnforcementSettings(policy=PolicySettings(grace_days=1)), None),
        (
            EnforcementSettings(policy=PolicySettings(grace_days=0)),
            "policy.grace_days must be at least 1 day for enforce (got 0): an owner needs time"
            " between the notice and the deactivation",
        ),
        (EnforcementSettings(policy=PolicySettings(delete_after_days=1)), None),
        (
            EnforcementSettings(policy=PolicySettings(delete_after_days=0)),
            "policy.delete_after_days counts days after deactivation and must be at least 1"
            " (got 0): a key cannot be deleted before it is deactivated",
        ),
        (EnforcementSettings(contact_tag="C" * 128), None),
        (
            EnforcementSettings(contact_tag="C" * 129),
            "policy.contact_tag must be 1 to 128 characters",
        ),
        (EnforcementSettings(contact_tag=""), "policy.contact_tag must be 1 to 128 characters"),
        (EnforcementSettings(max_recipients=1), None),
        (EnforcementSettings(max_recipients=50), None),
        (
            EnforcementSettings(max_recipients=0),
            "enforce.max_recipients must be 1 to 50 (got 0): the addresses a key's notice goes to",
        ),
        (
            EnforcementSettings(max_recipients=51),
            "enforce.max_recipients must be 1 to 50 (got 51): the addresses a key's notice goes to",
        ),
    ],
)
def test_settings_problems_at_their_edges(rules: EnforcementSettings, problem: str | None) -> None:
    assert rules.problems() == ([] if problem is None else [problem])


def test_shown_keeps_60_characters_and_cuts_61() -> None:
    assert shown("x" * 60) == repr("x" * 60)
    assert shown("x" * 61) == repr("x" * 57 + "...")


def test_recipients_over_the_cap_are_named() -> None:
    to, warnings = recipients_of({"Contact": "a@x.com b@x.com c@x.com d@x.com"}, "Contact", None)
    assert to == ("a@x.com", "b@x.com")
    assert warnings == [
        "Contact tag names 4 addresses; only the first 2 are mailed (enforce.max_recipients),"
        " not c@x.com d@x.com"
    ]


def test_a_mark_on_the_creation_day_is_plausible_and_deactivation_on_the_last_use_day() -> None:
    late = AccessKey(
        account="123456789012",
        user="alice",
        slot=1,
        status=KeyStatus.INACTIVE,
        created=datetime(2026, 3, 1, 23, 58, tzinfo=UTC),
        last_used=LastUse(datetime(2026, 3, 5, 12, 0, tzinfo=UTC)),
        key_id="AKIA0000000000000001",
    )
    assert plausibility(KeyRecord(notified=date(2026, 3, 1)), late, NOW) is None
    assert plausibility(KeyRecord(deactivated=date(2026, 3, 5)), late, NOW) is None
    assert plausibility(KeyRecord(deactivated=date(2026, 3, 4)), late, NOW) == (
        "deactivated@2026-03-04 but the key was used on 2026-03-05"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "notified@2026-03-01 notified@2026-03-02",
            "'notified@2026-03-02' is repeated or incomplete",
        ),
        ("notified", "'notified' is not mark@YYYY-MM-DD"),
        ("notified@2026-03-01@x", "'notified@2026-03-01@x' is not mark@YYYY-MM-DD"),
    ],
)
def test_each_mark_at_most_once(value: str, message: str) -> None:
    with pytest.raises(MalformedRecordError) as caught:
        KeyRecord.decode(value)
    assert str(caught.value) == message


def test_a_key_made_exactly_the_lookback_ago_is_still_looked_at() -> None:
    young = key("AKIA0000000000000001", 7)
    assert needs_a_look([young], NOW, EnforcementSettings())
    assert not needs_a_look([key("AKIA0000000000000001", 7.01)], NOW, EnforcementSettings())


def test_a_tag_of_exactly_60_characters_is_shown_as_it_is() -> None:
    tag = "keyturn:enforce:" + "1" * 44
    assert len(tag) == 60
    (flag,) = plan(
        [facts("u", key("AKIA0000000000000001", 3), tags={tag: "x"})], NOW, EnforcementSettings()
    ).flags
    assert flag.tag == tag


def test_a_reminder_due_with_nobody_to_tell_is_a_no_contact_skip() -> None:
    rules = EnforcementSettings(remind_every_days=2)
    user = facts(
        "u",
        key("AKIA0000000000000001", 33),
        contact=None,
        sealed={"AKIA0000000000000001": f"notified@{ago(3)}"},
    )
    result = plan([user], NOW, rules)
    assert [(s.why, s.reason) for s in result.skips] == [
        (
            SkipReason.NO_CONTACT,
            "33 days old (limit 30); no valid Contact address and no fallback contact, so the"
            " owner cannot be warned",
        )
    ]
