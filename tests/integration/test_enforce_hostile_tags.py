"""Issue 12 (items 4, 5) and issue 13 (item 10) as an attacker with `iam:TagUser` plays them,
against moto's IAM and SES and the real enforcement service.

After every forged input the same two invariants hold (`assert_invariants`): no key is
deactivated unless a mail keyturn sent named it first, and no mail goes to an address the
key's owner did not name (plain, at most `enforce.max_recipients` of them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keyturn.domain.enforcement import state_tag
from keyturn.sandbox.aws import LocalAws
from tests.enforce_seals import process_key, sealed
from tests.integration.test_enforce_moto import (
    enforcer,
    iam_of,
    mails,
    record,
    run,
    sender_verified,
    status,
)

__all__ = ["sender_verified"]  # the fixture, used by name below

LURE_KEY = "keyturn:enforce:URGENT your access is suspended re-verify at https://evil.example/v"
MANY = "ceo@corp.example cfo@corp.example all-staff@corp.example https://evil.example/x"


def tag(aws: LocalAws, user: str, key: str, value: str) -> None:
    iam_of(aws).tag_user(UserName=user, Tags=[{"Key": key, "Value": value}])


def sealed_tag(aws: LocalAws, user: str, key_id: str, marks: str) -> None:
    """A value with a seal keyturn accepts (a leaked key, or keyturn with a wrong clock):
    what the plausibility checks behind the seal must still catch."""
    tag(aws, user, state_tag(key_id), sealed(process_key(), user, key_id, marks))


def tags(aws: LocalAws, user: str) -> dict[str, str]:
    found = iam_of(aws).list_user_tags(UserName=user)["Tags"]
    return {item["Key"]: item["Value"] for item in found}


def day(days_from_now: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days_from_now)).date().isoformat()


def assert_invariants(
    aws: LocalAws, named: dict[str, set[str]], inactive_before: frozenset[str] = frozenset()
) -> None:
    """`named`: user -> the addresses its owner put in Contact (before the cap);
    `inactive_before`: keys someone else had already deactivated."""
    sent = mails(aws)
    everyone = set().union(*named.values())
    for mail in sent:
        to = set(mail["destinations"]["ToAddresses"])
        assert to <= everyone, to
        for text in (mail["body"], mail["subject"]):
            assert "URGENT" not in text
            assert "evil.example" not in text
    for user in named:
        for key_id, state in status(aws, user).items():
            if state == "Inactive" and key_id not in inactive_before:
                warned = [m for m in sent if key_id in m["body"] and "rotate it" in m["body"]]
                assert warned, f"{user}'s {key_id} was deactivated without a notice"


def events_of(sink: Any, action: str) -> list[dict[str, Any]]:
    return [event for event in sink.events if event["action"] == action]


def test_a_far_future_date_cannot_hide_a_key_even_sealed(sender_verified: LocalAws) -> None:
    aws = sender_verified
    aws.create_user("mallory", tags={"Contact": "mallory@example.com"})
    key = aws.add_key("mallory", age_days=400)
    sealed_tag(aws, "mallory", key.key_id, "notified@2099-01-01")
    service, sink = enforcer()
    planned = service.plan()
    service.report_plan(planned, dry_run=False)
    outcome = service.apply(planned)
    assert outcome.failures == []
    assert outcome.counts["notified"] == 1  # warned today, not hidden
    assert outcome.counts["tags_ignored"] == 1
    [event] = events_of(sink, "tag")
    assert event["kind"] == "implausible-state"
    assert "in the future" in event["reason"]
    notice = record(aws, "mallory", key.key_id)
    assert notice is not None
    assert notice.notified == datetime.now(UTC).date()  # the forged value is replaced
    assert run(days_later=6).counts["deactivated"] == 0
    assert run(days_later=7).counts["deactivated"] == 1
    assert_invariants(aws, {"mallory": {"mallory@example.com"}})


def test_dates_before_the_key_existed_get_it_neither_deactivated_nor_deleted_even_sealed(
    sender_verified: LocalAws,
) -> None:
    aws = sender_verified
    aws.create_user("victim", tags={"Contact": "victim@example.com"})
    key = aws.add_key("victim", age_days=40)
    sealed_tag(aws, "victim", key.key_id, f"notified@{day(-45)} reminded@{day(-44)}")
    aws.create_user("spare", tags={"Contact": "spare@example.com"})
    spare = aws.add_key("spare", age_days=60, active=False)  # deactivated by hand
    sealed_tag(aws, "spare", spare.key_id, f"inactive@{day(-400)}")
    env = {"KEYTURN_POLICY_DELETE_AFTER_DAYS": "14"}
    outcome = run(**env)
    assert outcome.counts["deactivated"] == 0
    assert outcome.counts["deleted"] == 0  # the deletion clock starts today instead
    assert outcome.counts["notified"] == 1
    assert status(aws, "victim")[key.key_id] == "Active"
    assert spare.key_id in status(aws, "spare")
    spare_now = record(aws, "spare", spare.key_id)
    assert spare_now is not None
    assert spare_now.inactive == datetime.now(UTC).date()
    assert run(days_later=7, **env).counts["deactivated"] == 1
    assert_invariants(
        aws,
        {"victim": {"victim@example.com"}, "spare": {"spare@example.com"}},
        inactive_before=frozenset({spare.key_id}),
    )


def test_a_malformed_value_flags_one_user_and_the_run_goes_on(sender_verified: LocalAws) -> None:
    aws = sender_verified
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    alice = aws.add_key("alice", age_days=31)
    aws.create_user("bob", tags={"Contact": "bob@example.com", "keyturn:exempt": "maybe"})
    aws.add_key("bob", age_days=90)
    aws.create_user("carol", tags={"Contact": "carol@example.com"})
    carol = aws.add_key("carol", age_days=90)
    sealed_tag(aws, "carol", carol.key_id, "notified last week")
    service, sink = enforcer()
    planned = service.plan()
    service.report_plan(planned, dry_run=False)
    outcome = service.apply(planned)
    assert outcome.failures == []
    assert record(aws, "alice", alice.key_id) is not None  # everyone else is enforced
    carol_now = record(aws, "carol", carol.key_id)
    assert carol_now is not None
    assert carol_now.notified == datetime.now(UTC).date()  # warned, not deactivated
    assert status(aws, "carol")[carol.key_id] == "Active"
    kinds = sorted((event["user"], event["kind"]) for event in events_of(sink, "tag"))
    assert kinds == [("bob", "bad-exemption"), ("carol", "malformed-state")]
    [bob] = [skip for skip in planned.skips if skip.user == "bob"]
    assert bob.unattended
    assert bob.age_days == 90
    assert_invariants(
        aws,
        {
            "alice": {"alice@example.com"},
            "bob": {"bob@example.com"},
            "carol": {"carol@example.com"},
        },
    )


def test_a_lure_in_a_tag_key_is_never_mailed_and_contact_is_capped(
    sender_verified: LocalAws,
) -> None:
    aws = sender_verified
    aws.create_user("eve", tags={"Contact": MANY})
    key = aws.add_key("eve", age_days=200)
    tag(aws, "eve", LURE_KEY, f"deleted@{day(-1)}")
    gone = "AKIAGONEGONEGONEGONE"
    tag(aws, "eve", state_tag(gone), f"deleted@{day(-1)}")  # well-formed, no such key
    service, sink = enforcer()
    planned = service.plan()
    service.report_plan(planned, dry_run=False)
    first = service.apply(planned)
    assert first.failures == []
    sent = mails(aws)
    assert [m["destinations"]["ToAddresses"] for m in sent] == [
        ["ceo@corp.example"],
        ["cfo@corp.example"],
    ]
    assert all(key.key_id in m["body"] and gone not in m["body"] for m in sent)
    assert first.counts["forgotten"] == 1  # the well-formed leftover is removed, unmailed
    assert state_tag(gone) not in tags(aws, "eve")
    assert LURE_KEY in tags(aws, "eve")  # not keyturn's: left alone, reported
    flagged = {event["kind"] for event in events_of(sink, "tag")}
    assert flagged == {"bad-key-id", "contact"}
    # Day after day: no new mail for the lure, and it is never removed-and-re-mailed.
    for days_later in (1, 2):
        again = run(days_later=days_later)
        assert again.counts["mails_sent"] == 0
        assert again.counts["tags_ignored"] == 3  # the lure, a bad address, the cap
    assert len(mails(aws)) == 2
    assert_invariants(
        aws, {"eve": {"ceo@corp.example", "cfo@corp.example", "all-staff@corp.example"}}
    )


def test_a_rotated_away_keys_state_tag_is_removed_with_a_count(sender_verified: LocalAws) -> None:
    """Issue 13 item 10: rotation deleted the notified key; the user's only key is new."""
    aws = sender_verified
    aws.create_user("dave", tags={"Contact": "dave@example.com"})
    old = aws.add_key("dave", age_days=35)
    assert run().counts["notified"] == 1
    aws.add_key("dave", age_days=0)
    iam_of(aws).delete_access_key(UserName="dave", AccessKeyId=old.key_id)
    assert state_tag(old.key_id) in tags(aws, "dave")
    service, _ = enforcer()
    planned = service.plan()
    assert [(step.action.value, step.key_id) for step in planned.steps] == [("forget", old.key_id)]
    outcome = service.apply(planned)
    assert outcome.summary()["forgotten"] == 1
    assert not any(key.startswith("keyturn:enforce:") for key in tags(aws, "dave"))
    assert len(mails(aws)) == 1  # the first warning only


# -- sealed state: the residual risk of a plausible back-dated notice ------------------------


def test_a_back_dated_plausible_notice_gets_no_key_deactivated_without_a_notice(
    sender_verified: LocalAws,
) -> None:
    """The attack the plausibility checks could not stop: `notified@` eight days ago on a
    40-day key (due since day 30, so after it became due, and before today) is past the
    7-day grace. Written by a tag-writer, it carries no seal of keyturn's: the key is
    warned today and deactivated only a full grace period after that notice."""
    aws = sender_verified
    aws.create_user("victim", tags={"Contact": "victim@example.com"})
    key = aws.add_key("victim", age_days=40)
    tag(aws, "victim", state_tag(key.key_id), f"notified@{day(-8)}")
    service, sink = enforcer()
    planned = service.plan()
    service.report_plan(planned, dry_run=False)
    outcome = service.apply(planned)
    assert outcome.failures == []
    assert outcome.counts["deactivated"] == 0
    assert outcome.counts["notified"] == 1
    assert outcome.counts["tags_ignored"] == 1
    [event] = events_of(sink, "tag")
    assert (event["user"], event["kind"]) == ("victim", "unsealed-state")
    assert status(aws, "victim")[key.key_id] == "Active"
    assert run(days_later=6).counts["deactivated"] == 0
    assert run(days_later=7).counts["deactivated"] == 1  # keyturn's own notice, sealed
    assert_invariants(aws, {"victim": {"victim@example.com"}})


def test_a_sealed_value_copied_from_another_key_or_user_is_rejected(
    sender_verified: LocalAws,
) -> None:
    """keyturn's own sealed `notified@` of one key, copied by a tag-writer onto another
    key of the same user and onto another user's key, moves neither deadline."""
    aws = sender_verified
    aws.create_user("bob", tags={"Contact": "bob@example.com"})
    bobs = aws.add_key("bob", age_days=40)
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    old = aws.add_key("alice", age_days=40)
    assert run(days_later=-8).counts["notified"] == 2  # both warned, 8 days ago
    aws.create_user("mallory", tags={"Contact": "mallory@example.com"})
    target = aws.add_key("mallory", age_days=40)
    spare = aws.add_key("alice", age_days=40)
    warned = tags(aws, "bob")[state_tag(bobs.key_id)]
    tag(aws, "mallory", state_tag(target.key_id), warned)  # another user's value
    tag(aws, "alice", state_tag(spare.key_id), tags(aws, "alice")[state_tag(old.key_id)])
    service, sink = enforcer()
    planned = service.plan()
    service.report_plan(planned, dry_run=False)
    outcome = service.apply(planned)
    assert outcome.failures == []
    assert status(aws, "bob")[bobs.key_id] == "Inactive"  # really warned 8 days ago
    assert status(aws, "alice")[old.key_id] == "Inactive"
    assert status(aws, "alice")[spare.key_id] == "Active"  # warned today instead
    assert status(aws, "mallory")[target.key_id] == "Active"
    flagged = sorted((e["user"], e["kind"]) for e in events_of(sink, "tag"))
    assert flagged == [("alice", "unsealed-state"), ("mallory", "unsealed-state")]
    assert outcome.counts["deactivated"] == 2
    assert outcome.counts["notified"] == 2
    assert_invariants(
        aws,
        {
            "bob": {"bob@example.com"},
            "alice": {"alice@example.com"},
            "mallory": {"mallory@example.com"},
        },
    )
