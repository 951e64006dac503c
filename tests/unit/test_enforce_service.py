"""EnforceService with fakes: SES gating, pacing and recording, no server.

The behaviour against real IAM/SES is in tests/integration; here are the cases moto cannot
produce (pending identities, an exhausted quota, SES rejecting a mail) and the pacing of
verification requests on a fake monotonic clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from keyturn.adapters.iam import KeyMetadata, UserInfo
from keyturn.adapters.ses import SendQuota, SesMailer
from keyturn.domain.enforcement import EnforcementSettings, KeyRecord, state_tag
from keyturn.domain.errors import ConfigError, OperationFailedError
from keyturn.domain.model import AccessKey, KeyStatus, LastUse
from keyturn.notices import Templates
from keyturn.permissions import actions_of
from keyturn.services.enforce import (
    CALLS,
    EnforceService,
    ListSink,
    MailOptions,
    RateLimiter,
)
from keyturn.wiring import client_config
from tests.enforce_seals import MemoryKey, marks_of, sealed

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
SENDER = "keys@example.com"
KEY = MemoryKey()


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakeIam:
    """A directory and a key writer over an in-memory account."""

    def __init__(self) -> None:
        self.keys: dict[str, list[KeyMetadata]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.writes: list[tuple[str, ...]] = []

    def add(self, user: str, key_id: str, age_days: int, contact: str | None) -> None:
        meta = KeyMetadata(key_id, KeyStatus.ACTIVE, NOW - timedelta(days=age_days))
        self.keys.setdefault(user, []).append(meta)
        self.tags.setdefault(user, {})
        if contact:
            self.tags[user]["Contact"] = contact

    def credential_report(self) -> Iterator[AccessKey]:
        for user, keys in self.keys.items():
            for slot, meta in enumerate(keys, start=1):
                yield AccessKey("123456789012", user, slot, meta.status, meta.created, LastUse(NOW))

    def list_access_keys(self, user: str) -> list[KeyMetadata]:
        return list(self.keys[user])

    def last_used(self, key_id: str) -> LastUse | None:
        return None

    def get_user(self, user: str) -> UserInfo:
        raise NotImplementedError

    def user_tags(self, user: str) -> dict[str, str]:
        return dict(self.tags[user])

    def group_members(self, group: str) -> frozenset[str]:
        return frozenset()

    def set_status(self, user: str, key_id: str, status: KeyStatus) -> None:
        self.writes.append(("status", user, key_id, status.value))

    def delete_key(self, user: str, key_id: str) -> bool:
        self.writes.append(("delete", user, key_id))
        return True

    def tag_user(self, user: str, tags: dict[str, str]) -> None:
        self.writes.append(("tag", user, *tags))
        self.tags[user].update(tags)

    def untag_user(self, user: str, keys: list[str]) -> None:
        self.writes.append(("untag", user, *keys))


class FakeSes:
    def __init__(self, status: dict[str, str], quota: float = 50_000) -> None:
        self.status = status
        self.quota = quota
        self.sent: list[str] = []
        self.requested: list[str] = []
        self.reject: set[str] = set()

    def send(self, *, source: str, to: str, subject: str, text: str, html: str) -> str:
        if to in self.reject:
            raise OperationFailedError(f"ses:SendEmail ({to}) failed: MessageRejected")
        assert "SECRET" not in text
        self.sent.append(to)
        return f"msg-{len(self.sent)}"

    def verification_status(self, identities: Iterable[str]) -> dict[str, str]:
        return {identity: self.status.get(identity, "NotStarted") for identity in identities}

    def request_verification(self, address: str) -> None:
        self.requested.append(address)

    def send_quota(self) -> SendQuota:
        return SendQuota(self.quota, 0, 1)


def service(
    iam: FakeIam,
    ses: FakeSes,
    *,
    mode: str = "never",
    limiter: RateLimiter | None = None,
    rules: EnforcementSettings | None = None,
) -> tuple[EnforceService, ListSink]:
    sink = ListSink()
    return (
        EnforceService(
            iam,
            iam,
            ses,
            FixedClock(),
            rules or EnforcementSettings(),
            Templates.load(),
            MailOptions(SENDER, recipient_verification=mode),  # type: ignore[arg-type]
            sink,
            authenticator=KEY,
            limiter=limiter or RateLimiter(monotonic=lambda: 0.0),
        ),
        sink,
    )


def test_an_unverified_sender_is_requested_once_and_notices_wait() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    ses = FakeSes({})
    enforcer, sink = service(iam, ses)
    outcome = enforcer.apply(enforcer.plan())
    assert ses.sent == []
    assert ses.requested == [SENDER]
    assert outcome.counts["notices_deferred"] == 1
    assert not outcome.failures
    assert (
        state_tag("AKIA0000000000000001") not in iam.tags["alice"]
    )  # not notified, so never deactivated
    assert any(e["outcome"] == "deferred" for e in sink.events)


def test_a_pending_identity_is_never_requested_again() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    ses = FakeSes({SENDER: "Pending"})
    enforcer, _ = service(iam, ses)
    enforcer.apply(enforcer.plan())
    assert ses.requested == []
    assert ses.sent == []


class FakeTime:
    """A monotonic clock that only `sleep` moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sandbox_owners(count: int) -> tuple[FakeIam, FakeSes]:
    iam = FakeIam()
    for number in range(count):
        iam.add(f"user{number}", f"AKIA{number:016d}", 31, f"user{number}@example.com")
    return iam, FakeSes({SENDER: "Success", "user0@example.com": "Success"})


def test_every_unverified_owner_is_requested_in_one_run_one_a_second() -> None:
    iam, ses = sandbox_owners(5)
    clock = FakeTime()
    limiter = RateLimiter(1.0, clock.monotonic, sleep=clock.sleep)
    enforcer, _ = service(iam, ses, mode="always", limiter=limiter)
    outcome = enforcer.apply(enforcer.plan())
    assert ses.sent == ["user0@example.com"]
    assert ses.requested == [f"user{number}@example.com" for number in range(1, 5)]
    assert clock.slept == [1.0, 1.0, 1.0]  # paced, never more than SES's 1 a second
    assert outcome.counts["verifications_requested"] == 4
    assert outcome.counts["notices_deferred"] == 4  # sent once the links are clicked


def test_verification_requests_stop_at_the_cap_and_the_rest_wait_for_the_next_run() -> None:
    iam, ses = sandbox_owners(5)
    clock = FakeTime()
    limiter = RateLimiter(1.0, clock.monotonic, sleep=clock.sleep, max_permits=2)
    enforcer, sink = service(iam, ses, mode="always", limiter=limiter)
    outcome = enforcer.apply(enforcer.plan())
    assert ses.requested == ["user1@example.com", "user2@example.com"]
    assert outcome.counts["verifications_postponed"] == 2
    assert any("next run" in event.get("reason", "") for event in sink.events)
    again, _ = service(
        iam,
        ses,
        mode="always",
        limiter=RateLimiter(1.0, clock.monotonic, sleep=clock.sleep, max_permits=2),
    )
    ses.status.update({"user1@example.com": "Pending", "user2@example.com": "Pending"})
    again.apply(again.plan())
    assert ses.requested[2:] == ["user3@example.com", "user4@example.com"]  # never a pending one


def test_verification_pacing_stops_before_the_lambda_runs_out_of_time() -> None:
    iam, ses = sandbox_owners(5)
    clock = FakeTime()
    left = [60.5]

    def remaining() -> float:
        return left[0] - clock.now

    limiter = RateLimiter(1.0, clock.monotonic, sleep=clock.sleep, remaining=remaining)
    enforcer, _ = service(iam, ses, mode="always", limiter=limiter)
    enforcer.apply(enforcer.plan())
    assert ses.requested == ["user1@example.com"]  # a second one would end 60 s from the end
    assert clock.slept == []


def test_auto_detects_the_sandbox_from_the_200_a_day_quota() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    ses = FakeSes({SENDER: "Success"}, quota=200)
    enforcer, _ = service(iam, ses, mode="auto")
    enforcer.apply(enforcer.plan())
    assert ses.sent == []
    assert ses.requested == ["alice@example.com"]


def test_the_daily_quota_defers_the_rest() -> None:
    iam = FakeIam()
    for number in range(3):
        iam.add(f"user{number}", f"AKIA{number:016d}", 31, f"user{number}@example.com")
    ses = FakeSes({SENDER: "Success"}, quota=2)
    enforcer, _ = service(iam, ses)
    outcome = enforcer.apply(enforcer.plan())
    assert len(ses.sent) == 2
    assert outcome.counts["notices_deferred"] == 1


def test_a_rejected_mail_is_a_failure_and_the_key_is_not_marked_notified() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    iam.add("bob", "AKIA0000000000000002", 31, "bob@example.com")
    ses = FakeSes({SENDER: "Success"})
    ses.reject.add("bob@example.com")
    enforcer, _ = service(iam, ses)
    outcome = enforcer.apply(enforcer.plan())
    assert len(outcome.failures) == 1
    assert (
        KeyRecord.decode(marks_of(iam.tags["alice"][state_tag("AKIA0000000000000001")])).notified
        == NOW.date()
    )
    assert state_tag("AKIA0000000000000002") not in iam.tags["bob"]  # retried next run


def test_one_mail_per_address_lists_all_their_keys() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "team@example.com")
    iam.add("alice", "AKIA0000000000000002", 40, "team@example.com")
    iam.add("bob", "AKIA0000000000000003", 50, "team@example.com bob@example.com")
    ses = FakeSes({SENDER: "Success"})
    enforcer, _ = service(iam, ses)
    outcome = enforcer.apply(enforcer.plan())
    assert sorted(ses.sent) == ["bob@example.com", "team@example.com"]
    assert outcome.counts["notified"] == 3


def test_a_malformed_state_tag_flags_one_user_and_the_run_goes_on() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 90, "alice@example.com")
    iam.add("bob", "AKIA0000000000000002", 31, "bob@example.com")
    # sealed, but not marks keyturn writes (a newer format, a bug): still ignored
    value = sealed(KEY, "alice", "AKIA0000000000000001", "notified@last-week")
    iam.tags["alice"][state_tag("AKIA0000000000000001")] = value
    enforcer, sink = service(iam, FakeSes({SENDER: "Success"}))
    planned = enforcer.plan()
    enforcer.report_plan(planned, dry_run=False)
    outcome = enforcer.apply(planned)
    tagged = sorted(write[1] for write in iam.writes if write[0] == "tag")
    assert tagged == ["alice", "bob"]  # both warned; alice's bad value replaced by a real mark
    assert not any(w[0] == "status" for w in iam.writes)  # nobody deactivated
    assert outcome.counts["tags_ignored"] == 1
    [event] = [e for e in sink.events if e["action"] == "tag"]
    assert (event["user"], event["kind"]) == ("alice", "malformed-state")


def test_apply_without_a_sender_refuses_before_any_write_when_notices_are_owed() -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    ses = FakeSes({SENDER: "Success"})
    enforcer = EnforceService(
        iam,
        iam,
        ses,
        FixedClock(),
        EnforcementSettings(),
        Templates.load(),
        MailOptions(None),
        ListSink(),
        authenticator=KEY,
    )
    planned = enforcer.plan()  # planning needs no sender
    assert [step.action.value for step in planned.steps] == ["notify"]
    with pytest.raises(ConfigError, match="SOURCEMAIL"):
        enforcer.apply(planned)
    assert iam.writes == []
    assert ses.sent == []


def test_enforcement_declares_its_permissions_and_never_deletes_identities() -> None:
    actions = actions_of(CALLS)
    assert "ses:DeleteIdentity" not in actions
    assert {
        "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
        "iam:TagUser",
        "iam:UntagUser",
        "ses:SendEmail",
        "ses:VerifyEmailIdentity",
        "ses:GetIdentityVerificationAttributes",
        "ses:GetSendQuota",
        "iam:ListUserTags",
        "iam:ListAccessKeys",
    } <= set(actions)


def test_verification_status_asks_100_identities_at_a_time() -> None:
    import boto3

    client = boto3.client(
        "ses",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=client_config(1, 1),
    )
    addresses = [f"user{number}@example.com" for number in range(150)]
    with Stubber(client) as stub:
        stub.add_response(
            "get_identity_verification_attributes",
            {"VerificationAttributes": {"user0@example.com": {"VerificationStatus": "Success"}}},
            {"Identities": addresses[:100]},
        )
        stub.add_response(
            "get_identity_verification_attributes",
            {"VerificationAttributes": {}},
            {"Identities": addresses[100:]},
        )
        found = SesMailer(client).verification_status(addresses)
        stub.assert_no_pending_responses()
    assert found["user0@example.com"] == "Success"
    assert found["user149@example.com"] == "NotStarted"


def test_a_key_nobody_can_be_told_about_is_an_audit_event_with_what_happens_next() -> None:
    iam = FakeIam()
    iam.add("ghost", "AKIA0000000000000009", 500, None)
    enforcer, sink = service(iam, FakeSes({SENDER: "Success"}))
    planned = enforcer.plan()
    enforcer.report_plan(planned, dry_run=False)
    outcome = enforcer.apply(planned)
    [event] = [e for e in sink.events if e["action"] == "skip"]
    assert (event["user"], event["key_id"], event["age_days"]) == (
        "ghost",
        "AKIA0000000000000009",
        500,
    )
    assert event["outcome"] == "no-contact"
    assert event["unattended"] is True
    assert "Contact" in event["next"]
    assert outcome.summary()["unattended"] == 1
