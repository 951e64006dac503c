"""Enforcement against moto's IAM and SES: the issue's acceptance, with a movable clock.

Keys are backdated in the emulator; "a week later" is a clock passed to the service, so
the keys' ages and the recorded notice dates move together, as they would in real time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyturn.adapters.credential_report import parse_report
from keyturn.config import load_settings
from keyturn.domain.enforcement import KeyRecord, state_tag
from keyturn.sandbox.aws import LocalAws
from keyturn.services.enforce import EnforceService, ListSink, Outcome, resolve_config
from keyturn.wiring import build_enforce
from tests.enforce_seals import marks_of

SENDER = "keys@example.com"
BASE_ENV = {
    "SOURCEMAIL": SENDER,
    "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
    "KEYTURN_ENFORCE_DRY_RUN": "false",
    "KEYTURN_NOTIFY_FALLBACK_CONTACT": "secops@example.com",
    "KEYTURN_POLICY_EXEMPT_TAGS": "keyturn:exempt=true",
}
GROUP = {"KEYTURN_POLICY_EXEMPT_GROUPS": "break-glass"}


class Clock:
    def __init__(self, days_later: float = 0) -> None:
        self.value = datetime.now(UTC) + timedelta(days=days_later)

    def now(self) -> datetime:
        return self.value


def enforcer(days_later: float = 0, **env: str) -> tuple[EnforceService, ListSink]:
    loaded = load_settings(environ={**os.environ, **BASE_ENV, **env})
    config = resolve_config(loaded.settings)
    sink = ListSink()
    return build_enforce(loaded.settings, config, sink, clock=Clock(days_later)), sink


def run(days_later: float = 0, **env: str) -> Outcome:
    service, _ = enforcer(days_later, **env)
    return service.apply(service.plan())


def mails(aws: LocalAws) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = aws.data()["ses"]["Message"]
    return messages


def status(aws: LocalAws, user: str) -> dict[str, str]:
    found = iam_of(aws).list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {key["AccessKeyId"]: key["Status"] for key in found}


def record(aws: LocalAws, user: str, key_id: str) -> KeyRecord | None:
    tags = iam_of(aws).list_user_tags(UserName=user)["Tags"]
    value = {tag["Key"]: tag["Value"] for tag in tags}.get(state_tag(key_id))
    return None if value is None else KeyRecord.decode(marks_of(value))


def iam_of(aws: LocalAws, cache: dict[str, Any] = {}) -> Any:  # noqa: B006 - a client cache
    """One client per server: building a boto3 client costs more than the call itself."""
    if aws.url not in cache:
        cache[aws.url] = aws.client("iam")
    return cache[aws.url]


def statuses(aws: LocalAws) -> dict[str, set[str]]:
    """Every user's key statuses from one credential report (moto rebuilds it live)."""
    iam = iam_of(aws)
    iam.generate_credential_report()
    found: dict[str, set[str]] = {}
    for key in parse_report(iam.get_credential_report()["Content"]):
        found.setdefault(key.user, set()).add(key.status.value)
    return found


def account_state(aws: LocalAws, users: list[str]) -> dict[str, Any]:
    iam = iam_of(aws)
    return {
        user: (
            status(aws, user),
            sorted((t["Key"], t["Value"]) for t in iam.list_user_tags(UserName=user)["Tags"]),
        )
        for user in users
    }


@pytest.fixture
def sender_verified(aws: LocalAws) -> LocalAws:
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    return aws


def test_160_users_each_due_key_notified_once_then_deactivated_a_week_later(
    sender_verified: LocalAws,
) -> None:
    aws = sender_verified
    aws.client("iam").create_group(GroupName="break-glass")
    due, fresh, exempt, untagged = {}, [], [], []
    for number in range(160):
        name = f"user{number:03d}"
        kind = number % 8
        tags = {"Contact": f"{name}@example.com"}
        if kind == 5:
            tags["keyturn:exempt"] = "true"
        if kind == 6:
            tags = {}
        aws.create_user(name, tags=tags)
        if kind == 7:
            aws.client("iam").add_user_to_group(GroupName="break-glass", UserName=name)
        if kind in (0, 1, 2, 6):
            due[name] = aws.add_key(name, age_days=31 + kind).key_id
        elif kind in (3, 4):
            fresh.append(aws.add_key(name, age_days=29).key_id)
        else:
            aws.add_key(name, age_days=400)
            exempt.append(name)
        if kind == 6:
            untagged.append(name)
    users = [f"user{number:03d}" for number in range(160)]
    sample = users[::3]  # every kind of user (8 kinds, step 3), at a third of the calls

    first = run(**GROUP)
    assert first.failures == []
    assert first.counts["notified"] == len(due) == 80
    sent = mails(aws)
    named = [address for mail in sent for address in mail["destinations"]["ToAddresses"]]
    # one mail per contact per run: the 20 untagged users' keys share one fallback mail
    assert sorted(named) == sorted(
        {f"{name}@example.com" for name in due if name not in untagged} | {"secops@example.com"}
    )
    for name, key_id in due.items():
        notice = record(aws, name, key_id)
        assert notice is not None
        assert notice.notified == datetime.now(UTC).date()
        mail_for = "secops@example.com" if name in untagged else f"{name}@example.com"
        assert any(
            key_id in mail["body"] and mail_for in mail["destinations"]["ToAddresses"]
            for mail in sent
        )
    before = account_state(aws, sample)

    second = run(**GROUP)
    assert second.counts["mails_sent"] == 0
    assert second.failures == []
    assert len(mails(aws)) == len(sent)
    assert account_state(aws, sample) == before

    six_days = run(days_later=6, **GROUP)
    assert six_days.counts["deactivated"] == 0

    week = run(days_later=7, **GROUP)
    assert week.counts["deactivated"] == 80
    assert week.counts["told_deactivated"] == 80
    now = statuses(aws)
    assert {user for user, found in now.items() if found == {"Inactive"}} == set(due)
    assert all(now[user] == {"Active"} for user in users if user not in due), (
        "keys below the threshold and exempt users' keys are untouched"
    )
    assert len(exempt) == 40
    after_week = account_state(aws, sample)
    assert run(days_later=7, **GROUP).counts["mails_sent"] == 0
    assert account_state(aws, sample) == after_week


def test_past_the_deadline_but_never_notified_is_notified_not_deactivated(
    sender_verified: LocalAws,
) -> None:
    aws = sender_verified
    aws.create_user("old", tags={"Contact": "old@example.com"})
    key = aws.add_key("old", age_days=120)
    outcome = run()
    assert outcome.counts["notified"] == 1
    assert outcome.counts["deactivated"] == 0
    assert status(aws, "old")[key.key_id] == "Active"
    assert run(days_later=6).counts["deactivated"] == 0
    assert run(days_later=7).counts["deactivated"] == 1


def test_an_unverified_sender_is_reported_and_skipped_then_sent_later(aws: LocalAws) -> None:
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=31)
    service, sink = enforcer()
    first = service.apply(service.plan())
    assert first.failures == []
    assert first.counts["verifications_requested"] == 1
    assert first.counts["notices_deferred"] == 1
    assert mails(aws) == []
    assert any("verification requested" in event.get("reason", "") for event in sink.events)
    # moto verifies at once; real SES once the link is clicked. The next run sends.
    assert run().counts["notified"] == 1
    assert len(mails(aws)) == 1


def test_deleted_after_deactivation_and_the_owner_is_told(sender_verified: LocalAws) -> None:
    aws = sender_verified
    aws.create_user("bob", tags={"Contact": "bob@example.com"})
    key = aws.add_key("bob", age_days=31)
    env = {"KEYTURN_POLICY_DELETE_AFTER_DAYS": "14"}
    run(**env)
    assert run(days_later=7, **env).counts["deactivated"] == 1
    assert run(days_later=20, **env).counts["deleted"] == 0
    gone = run(days_later=21, **env)
    assert gone.counts["deleted"] == 1
    assert gone.counts["told_deleted"] == 1
    assert key.key_id not in status(aws, "bob")
    assert record(aws, "bob", key.key_id) is None
    subjects = [mail["subject"] for mail in mails(aws)]
    assert len(subjects) == 3
    assert "deactivated or deleted" in subjects[-1]


def test_secrets_never_reach_events_or_mails(sender_verified: LocalAws) -> None:
    aws = sender_verified
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    key = aws.add_key("alice", age_days=31)
    service, sink = enforcer()
    service.report_plan(planned := service.plan(), dry_run=False)
    service.apply(planned)
    assert key.secret not in repr(sink.events)
    assert key.secret not in repr(mails(aws))
