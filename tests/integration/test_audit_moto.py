"""The audit against moto's server: every key exactly once, right age, right finding, and
a constant number of IAM calls whatever the number of users."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.iam import IamDirectory
from keyturn.config import load_settings
from keyturn.domain.model import Finding
from keyturn.domain.policy import PolicySettings
from keyturn.sandbox.aws import LocalAws
from keyturn.services.audit import AuditRequest, AuditService
from keyturn.wiring import build_aws

AGES = [0, 5, 29.5, 30.2, 31, 36.5, 37.1, 45, 90, 400]


def expected_finding(age: float, active: bool) -> Finding:
    if not active:
        return Finding.OK
    if age >= 37:
        return Finding.DEACTIVATE
    if age >= 30:
        return Finding.NOTIFY
    return Finding.OK


@dataclass
class Seeded:
    keys: dict[str, tuple[str, int, Finding]]  # key id -> (user, age in days, finding)
    contacts: dict[str, str]


def seed(aws: LocalAws, users: int) -> Seeded:
    rng = random.Random(7)
    keys: dict[str, tuple[str, int, Finding]] = {}
    contacts: dict[str, str] = {}
    for index in range(users):
        name = f"user-{index:03d}"
        tags = {}
        if index % 3:
            tags["Contact"] = contacts.setdefault(name, f"{name}@example.com")
        aws.create_user(name, tags=tags)
        for _ in range(0 if index % 17 == 0 else 2 if index % 4 == 0 else 1):
            age = rng.choice(AGES)
            active = index % 11 != 0
            key = aws.add_key(name, age_days=age, active=active)
            keys[key.key_id] = (name, int(age), expected_finding(age, active))
    return Seeded(keys=keys, contacts=contacts)


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


def audit(aws: LocalAws, request: AuditRequest) -> tuple[Any, Counter[str]]:
    settings = load_settings(environ={}).settings
    iam = build_aws(settings).iam()
    counter = CallCounter()
    iam.meta.events.register("before-call.iam", counter)
    service = AuditService(IamDirectory(iam), SystemClock(), PolicySettings(), workers=4)
    return service.run(request), counter.calls


@pytest.fixture
def seeded(aws: LocalAws) -> Seeded:
    return seed(aws, 150)


def test_every_key_once_with_its_age_and_finding_in_at_most_4_calls(
    aws: LocalAws, seeded: Seeded
) -> None:
    result, calls = audit(aws, AuditRequest())
    assert sum(calls.values()) <= 4
    assert set(calls) <= {"GenerateCredentialReport", "GetCredentialReport"}
    assert len(result.keys) == len(seeded.keys)
    got = Counter((k.key.user, k.age_days, k.finding) for k in result.keys)
    assert got == Counter(seeded.keys.values())


def test_key_ids_resolve_every_key_exactly_once(aws: LocalAws, seeded: Seeded) -> None:
    result, calls = audit(aws, AuditRequest(key_ids=True))
    ids = [k.key.key_id for k in result.keys]
    assert sorted(ids) == sorted(seeded.keys)  # type: ignore[type-var]
    for item in result.keys:
        assert item.key.key_id is not None
        user, age, finding = seeded.keys[item.key.key_id]
        assert (item.key.user, item.age_days, item.finding) == (user, age, finding)
    users_with_keys = len({user for user, _, _ in seeded.keys.values()})
    assert calls["ListAccessKeys"] == users_with_keys
    assert not result.warnings


def test_contacts_come_from_the_contact_tag(aws: LocalAws, seeded: Seeded) -> None:
    result, calls = audit(aws, AuditRequest(contacts=True))
    for item in result.keys:
        assert item.key.contact == seeded.contacts.get(item.key.user)
    assert calls["ListUserTags"] == len({k.key.user for k in result.keys})


def test_last_use_is_reported(aws: LocalAws) -> None:
    aws.create_user("svc")
    used = aws.add_key("svc", age_days=10, last_used_days_ago=2, service="s3")
    aws.add_key("svc", age_days=1)
    report, _ = audit(aws, AuditRequest())
    direct, _ = audit(aws, AuditRequest(users=("svc",)))
    for result in (report, direct):
        first, second = sorted(result.keys, key=lambda k: k.key.slot)
        assert first.key.last_used is not None
        assert second.key.last_used is None
    (live,) = [k for k in direct.keys if k.key.key_id == used.key_id]
    assert live.key.last_used is not None
    assert live.key.last_used.service == "s3"


def test_direct_mode_reads_only_the_named_users(aws: LocalAws, seeded: Seeded) -> None:
    result, calls = audit(aws, AuditRequest(users=("user-004", "user-001")))
    assert {k.key.user for k in result.keys} == {"user-004", "user-001"}
    assert "GenerateCredentialReport" not in calls
    assert calls["GetUser"] == 2
