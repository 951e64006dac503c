"""The audit service against an in-memory directory: which calls it makes, and when."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.adapters.iam import KeyMetadata, UserInfo
from keyturn.domain.errors import NotFoundError
from keyturn.domain.model import AccessKey, Finding, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings
from keyturn.services.audit import AuditRequest, AuditService, match_slots

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ACCOUNT = "111122223333"


class FixedClock:
    def now(self) -> datetime:
        return NOW


@dataclass
class FakeDirectory:
    """Users -> (tags, [(key id, age days, active)]); counts every call like IAM would."""

    users: dict[str, tuple[dict[str, str], list[tuple[str, float, bool]]]]
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def _created(self, age: float) -> datetime:
        return (NOW - timedelta(days=age)).replace(microsecond=0)

    def credential_report(self) -> Iterator[AccessKey]:
        self.calls["report"] += 1
        for user, (_, keys) in self.users.items():
            for slot, (_, age, active) in enumerate(keys, start=1):
                yield AccessKey(
                    account=ACCOUNT,
                    user=user,
                    slot=slot,
                    status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
                    created=self._created(age),
                    last_used=None,
                )

    def list_access_keys(self, user: str) -> list[KeyMetadata]:
        self.calls["list_access_keys"] += 1
        return [
            KeyMetadata(
                key_id,
                KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
                # IAM keeps sub-second precision; the report does not
                self._created(age) + timedelta(microseconds=250_000),
            )
            for key_id, age, active in self.users[user][1]
        ]

    def last_used(self, key_id: str) -> LastUse | None:
        self.calls["last_used"] += 1
        return None

    def get_user(self, user: str) -> UserInfo:
        self.calls["get_user"] += 1
        if user not in self.users:
            raise NotFoundError(f"iam:GetUser ({user}): not found")
        return UserInfo(user, f"arn:aws:iam::{ACCOUNT}:user/{user}", self.users[user][0])

    def user_tags(self, user: str) -> dict[str, str]:
        self.calls["user_tags"] += 1
        return self.users[user][0]

    def group_members(self, group: str) -> frozenset[str]:
        self.calls["group_members"] += 1
        return self.groups.get(group, frozenset())


def directory() -> FakeDirectory:
    return FakeDirectory(
        users={
            "alice": (
                {"Contact": "alice@example.com"},
                [("AKIAALICE1", 45, True), ("AKIAALICE2", 3, True)],
            ),
            "bob": ({}, [("AKIABOB1", 31, True)]),
            "carol": ({"keyturn:exempt": "true"}, [("AKIACAROL1", 400, True)]),
            "dave": ({}, []),
        },
        groups={"breakglass": frozenset({"bob"})},
    )


def service(fake: FakeDirectory, policy: PolicySettings | None = None) -> AuditService:
    return AuditService(fake, FixedClock(), policy or PolicySettings(), workers=4)


def test_plain_audit_reads_only_the_report() -> None:
    fake = directory()
    result = service(fake).run(AuditRequest())
    assert fake.calls == Counter({"report": 1})
    assert [(k.key.user, k.key.slot, k.finding) for k in result.keys] == [
        ("alice", 1, Finding.DEACTIVATE),
        ("alice", 2, Finding.OK),
        ("bob", 1, Finding.NOTIFY),
        ("carol", 1, Finding.DEACTIVATE),
    ]
    assert result.out_of_policy == 3
    assert all(k.key.key_id is None and k.key.contact is None for k in result.keys)


def test_key_ids_cost_one_list_per_user_with_keys() -> None:
    fake = directory()
    result = service(fake).run(AuditRequest(key_ids=True))
    assert fake.calls["list_access_keys"] == 3  # dave has no key, so no row and no call
    assert [k.key.key_id for k in result.keys] == [
        "AKIAALICE1",
        "AKIAALICE2",
        "AKIABOB1",
        "AKIACAROL1",
    ]
    assert fake.calls["user_tags"] == 0


def test_contacts_and_exemptions_read_tags_once_per_user() -> None:
    fake = directory()
    policy = PolicySettings(
        exempt_tags={"keyturn:exempt": "true"}, exempt_groups=frozenset({"breakglass"})
    )
    result = service(fake, policy).run(AuditRequest(contacts=True))
    assert fake.calls["user_tags"] == 3
    assert fake.calls["group_members"] == 1
    by_user = {(k.key.user, k.key.slot): k for k in result.keys}
    assert by_user[("alice", 1)].key.contact == "alice@example.com"
    assert by_user[("bob", 1)].finding is Finding.EXEMPT  # via group
    assert by_user[("carol", 1)].finding is Finding.EXEMPT  # via tag


def test_exempt_tags_are_read_even_without_contacts() -> None:
    fake = directory()
    policy = PolicySettings(exempt_tags={"keyturn:exempt": "true"})
    result = service(fake, policy).run(AuditRequest())
    assert {k.key.user: k.finding for k in result.keys}["carol"] is Finding.EXEMPT
    assert all(k.key.contact is None for k in result.keys)


def test_direct_mode_reads_named_users_live() -> None:
    fake = directory()
    result = service(fake).run(AuditRequest(users=("bob", "alice", "bob"), contacts=True))
    assert [k.key.key_id for k in result.keys] == ["AKIABOB1", "AKIAALICE1", "AKIAALICE2"]
    assert fake.calls["report"] == 0
    assert fake.calls["last_used"] == 3
    assert result.source == "iam-api"
    assert result.keys[1].key.contact == "alice@example.com"


def test_direct_mode_names_every_unknown_user() -> None:
    with pytest.raises(NotFoundError, match="no such IAM user: zed, yan"):
        service(directory()).run(AuditRequest(users=("alice", "zed", "yan")))


def _row(slot: int, created: datetime) -> AccessKey:
    return AccessKey(ACCOUNT, "u", slot, KeyStatus.ACTIVE, created, None)


def test_match_slots_by_creation_second() -> None:
    t1 = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)
    t2 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
    live = [
        KeyMetadata("AKIA2", KeyStatus.ACTIVE, t2.replace(microsecond=900_000)),
        KeyMetadata("AKIA1", KeyStatus.ACTIVE, t1.replace(microsecond=100)),
    ]
    assert match_slots([_row(1, t1), _row(2, t2)], live) == {1: "AKIA1", 2: "AKIA2"}


def test_match_slots_same_second_in_creation_order() -> None:
    t = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)
    live = [
        KeyMetadata("AKIALATER", KeyStatus.ACTIVE, t.replace(microsecond=800)),
        KeyMetadata("AKIAFIRST", KeyStatus.ACTIVE, t.replace(microsecond=100)),
    ]
    assert match_slots([_row(1, t), _row(2, t)], live) == {1: "AKIAFIRST", 2: "AKIALATER"}


def test_match_slots_leaves_a_vanished_key_unresolved() -> None:
    t = datetime(2026, 1, 1, 8, tzinfo=UTC)
    other = KeyMetadata("AKIANEW", KeyStatus.ACTIVE, t + timedelta(days=3))
    assert match_slots([_row(1, t)], [other]) == {}
