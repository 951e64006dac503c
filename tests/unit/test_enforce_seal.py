"""Sealed enforcement state (issue 12's residual risk): a tag-writer cannot shorten a warning.

Before the seal, a back-dated but plausible `notified@` (after the key became due, before
today) passed every check and got a key deactivated with no notice ever sent. Now the
planner reads marks only from a `SealedState`, made by the service for a value whose seal
verified for exactly this user and key id. Fakes for IAM and SES, an in-memory HMAC key.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from keyturn.domain.enforcement import (
    Action,
    EnforcementSettings,
    FlagKind,
    KeyRecord,
    Mark,
    SealedState,
    SkipReason,
    plan,
    state_tag,
)
from keyturn.domain.model import KeyStatus
from keyturn.domain.policy import PolicySettings
from keyturn.domain.trust import Rejected
from keyturn.services.enforce_seal import StateSeals
from tests.enforce_seals import MemoryKey, marks_of, sealed
from tests.unit.test_enforce_service import KEY, NOW, SENDER, FakeIam, FakeSes, service
from tests.unit.test_enforcement_plan import KEY as KEY_ID
from tests.unit.test_enforcement_plan import NOW as PLAN_NOW
from tests.unit.test_enforcement_plan import RULES, key, user

ALICE = "AKIA0000000000000001"
BOB = "AKIA0000000000000002"
TODAY = NOW.date()


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def deactivations(iam: FakeIam) -> list[tuple[str, ...]]:
    return [write for write in iam.writes if write[0] == "status"]


# -- the attack: a plausible back-dated notice --------------------------------------------


def test_a_back_dated_plausible_notice_written_by_a_tag_writer_deactivates_nothing() -> None:
    """40-day key, due since day 30: `notified@` 8 days ago is plausible (after it became
    due, before today) and past the 7-day grace. Unsealed, it is not believed: the owner
    is warned today and the deadline is a full grace period away."""
    iam = FakeIam()
    iam.add("alice", ALICE, 40, "alice@example.com")
    iam.tags["alice"][state_tag(ALICE)] = f"notified@{days_ago(8)}"
    ses = FakeSes({SENDER: "Success"})
    enforcer, sink = service(iam, ses)
    planned = enforcer.plan()
    enforcer.report_plan(planned, dry_run=False)
    assert [(step.action, step.key_id) for step in planned.steps] == [(Action.NOTIFY, ALICE)]
    outcome = enforcer.apply(planned)
    assert deactivations(iam) == []
    assert ses.sent == ["alice@example.com"]
    assert outcome.counts["tags_ignored"] == 1
    [event] = [e for e in sink.events if e["action"] == "tag"]
    assert (event["user"], event["kind"]) == ("alice", "unsealed-state")
    assert "carries no seal" in event["reason"]
    # the forged value is replaced by keyturn's own, sealed, dated today
    written = iam.tags["alice"][state_tag(ALICE)]
    assert StateSeals(KEY).open("alice", ALICE, written) == SealedState(f"notified@{TODAY}")


def test_keyturns_own_sealed_notice_still_deactivates_after_the_grace() -> None:
    iam = FakeIam()
    iam.add("alice", ALICE, 40, "alice@example.com")
    iam.tags["alice"][state_tag(ALICE)] = sealed(KEY, "alice", ALICE, f"notified@{days_ago(8)}")
    enforcer, _ = service(iam, FakeSes({SENDER: "Success"}))
    planned = enforcer.plan()
    assert not planned.flags
    assert [step.action for step in planned.steps] == [Action.DEACTIVATE]
    enforcer.apply(planned)
    assert deactivations(iam) == [("status", "alice", ALICE, "Inactive")]
    record = KeyRecord.decode(marks_of(iam.tags["alice"][state_tag(ALICE)]))
    assert record.deactivated == TODAY


@pytest.mark.parametrize(
    ("source_user", "source_key", "with_key"),
    [
        ("alice", BOB, KEY),  # alice's tag for her other key, copied onto this key
        ("bob", ALICE, KEY),  # another user's tag (same key id named): user is sealed too
        ("alice", ALICE, MemoryKey(b"x" * 32)),  # sealed by someone else's key
    ],
    ids=["other-key", "other-user", "other-sealing-key"],
)
def test_a_sealed_value_from_elsewhere_is_rejected(
    source_user: str, source_key: str, with_key: MemoryKey
) -> None:
    iam = FakeIam()
    iam.add("alice", ALICE, 40, "alice@example.com")
    copied = sealed(with_key, source_user, source_key, f"notified@{days_ago(8)}")
    iam.tags["alice"][state_tag(ALICE)] = copied
    enforcer, _ = service(iam, FakeSes({SENDER: "Success"}))
    planned = enforcer.plan()
    assert [step.action for step in planned.steps] == [Action.NOTIFY]
    [flag] = planned.flags
    assert flag.kind is FlagKind.UNSEALED
    assert "its seal was not made by test key for this user and key" in flag.detail
    enforcer.apply(planned)
    assert deactivations(iam) == []


def test_a_sealed_inactive_mark_from_another_key_cannot_start_a_deletion_clock() -> None:
    iam = FakeIam()
    iam.add("alice", ALICE, 90, "alice@example.com")
    iam.keys["alice"][0] = replace(iam.keys["alice"][0], status=KeyStatus.INACTIVE)
    iam.tags["alice"][state_tag(ALICE)] = sealed(KEY, "alice", BOB, f"inactive@{days_ago(60)}")
    rules = EnforcementSettings(policy=PolicySettings(delete_after_days=14))
    enforcer, _ = service(iam, FakeSes({SENDER: "Success"}), rules=rules)
    planned = enforcer.plan()
    assert [step.action for step in planned.steps] == [Action.RECORD]  # clock starts today
    assert planned.flags[0].kind is FlagKind.UNSEALED


def test_sealing_covers_every_mark_so_none_can_be_added_or_redated() -> None:
    seals = StateSeals(KEY)
    record = KeyRecord().marked(Mark.NOTIFIED, TODAY)
    value = seals.value("alice", ALICE, record)
    assert seals.open("alice", ALICE, value) == SealedState(record.encode())
    marks, _, seal = value.rpartition(":")
    for forged in (f"notified@{days_ago(8)}", f"{marks} deactivated@{TODAY}"):
        assert isinstance(seals.open("alice", ALICE, f"{forged}:{seal}"), Rejected)
    assert isinstance(seals.open("alice", ALICE, f"{marks}:"), Rejected)
    assert isinstance(seals.open("alice", ALICE, f"{marks}:!!"), Rejected)
    assert len(state_tag(ALICE)) <= 128
    longest = KeyRecord()
    for mark in Mark:
        longest = longest.marked(mark, TODAY)
    assert len(seals.value("alice", "AKIA" + "X" * 124, longest)) <= 256


# -- the planner's side: no SealedState, no state -----------------------------------------


def test_the_planner_reads_no_marks_from_tag_text() -> None:
    """A state tag the service did not vouch for (no entry in `states`) is no state."""
    facts = user(key(40), tags={state_tag(KEY_ID): f"notified@{days_ago_plan(8)}"})
    result = plan([facts], PLAN_NOW, RULES)
    assert [step.action for step in result.steps] == [Action.NOTIFY]
    assert result.flags[0].kind is FlagKind.UNSEALED
    assert "its seal was not checked" in result.flags[0].detail


def test_a_rejected_seal_is_one_flag_with_its_reason_and_the_key_is_warned() -> None:
    facts = user(key(40), tags={state_tag(KEY_ID): f"notified@{days_ago_plan(8)}"})
    rejected = Rejected("alice", "its seal was not made by KMS key k for this user and key")
    facts = replace(facts, states={KEY_ID: rejected})
    result = plan([facts], PLAN_NOW, RULES)
    [flag] = result.flags
    assert flag.kind is FlagKind.UNSEALED
    assert "KMS key k" in flag.detail
    assert [step.action for step in result.steps] == [Action.NOTIFY]
    assert not any(skip.why is SkipReason.WAITING for skip in result.skips)


def days_ago_plan(days: int) -> str:
    return (PLAN_NOW.date() - timedelta(days=days)).isoformat()
