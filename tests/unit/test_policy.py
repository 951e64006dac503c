"""The key-age policy at its boundaries: pure, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.model import AccessKey, Finding, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings, age_in_days, classify

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def key(
    age_days: float,
    *,
    active: bool = True,
    last_used_days_ago: float | None = None,
    tags: dict[str, str] | None = None,
    groups: frozenset[str] | None = None,
) -> AccessKey:
    return AccessKey(
        account="123456789012",
        user="alice",
        slot=1,
        status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
        created=NOW - timedelta(days=age_days),
        last_used=None
        if last_used_days_ago is None
        else LastUse(NOW - timedelta(days=last_used_days_ago)),
        user_tags=tags,
        user_groups=groups,
    )


DEFAULT = PolicySettings()


@pytest.mark.parametrize(
    ("age", "finding"),
    [
        (0, Finding.OK),
        (29, Finding.OK),
        (29.999, Finding.OK),
        (30, Finding.NOTIFY),
        (36, Finding.NOTIFY),
        (36.999, Finding.NOTIFY),
        (37, Finding.DEACTIVATE),
        (400, Finding.DEACTIVATE),
    ],
)
def test_default_thresholds_are_seed_002s(age: float, finding: Finding) -> None:
    assert classify(key(age), NOW, DEFAULT).finding is finding


def test_age_is_whole_days_rounded_down() -> None:
    assert age_in_days(NOW - timedelta(days=29, hours=23, minutes=59), NOW) == 29
    assert age_in_days(NOW - timedelta(days=30), NOW) == 30


def test_custom_thresholds_move_both_boundaries() -> None:
    policy = PolicySettings(notify_after_days=60, grace_days=14)
    assert classify(key(59), NOW, policy).finding is Finding.OK
    assert classify(key(60), NOW, policy).finding is Finding.NOTIFY
    assert classify(key(73), NOW, policy).finding is Finding.NOTIFY
    assert classify(key(74), NOW, policy).finding is Finding.DEACTIVATE


def test_inactive_key_is_ok_unless_deletion_is_configured() -> None:
    assert classify(key(500, active=False), NOW, DEFAULT).finding is Finding.OK
    policy = PolicySettings(delete_after_days=30)  # 37 + 30 = 67
    assert classify(key(66, active=False), NOW, policy).finding is Finding.OK
    assert classify(key(67, active=False), NOW, policy).finding is Finding.DELETE


def test_unused_rule_flags_idle_and_never_used_keys() -> None:
    policy = PolicySettings(unused_after_days=14)
    assert classify(key(13), NOW, policy).finding is Finding.OK
    assert classify(key(14), NOW, policy).finding is Finding.UNUSED
    assert classify(key(20, last_used_days_ago=13), NOW, policy).finding is Finding.OK
    assert classify(key(20, last_used_days_ago=14), NOW, policy).finding is Finding.UNUSED
    # deactivation outranks an idle key
    assert classify(key(40, last_used_days_ago=30), NOW, policy).finding is Finding.DEACTIVATE


def test_exemption_by_tag_is_case_insensitive_and_wildcard() -> None:
    policy = PolicySettings(exempt_tags={"keyturn:exempt": "true"})
    result = classify(key(400, tags={"keyturn:exempt": "TRUE"}), NOW, policy)
    assert result.finding is Finding.EXEMPT
    assert "keyturn:exempt" in result.decision.reason
    assert classify(key(400, tags={"keyturn:exempt": "no"}), NOW, policy).finding is (
        Finding.DEACTIVATE
    )
    wildcard = PolicySettings(exempt_tags={"break-glass": "*"})
    assert classify(key(400, tags={"break-glass": "x"}), NOW, wildcard).finding is Finding.EXEMPT


def test_exemption_by_group() -> None:
    policy = PolicySettings(exempt_groups=frozenset({"breakglass"}))
    exempt = key(400, groups=frozenset({"breakglass", "devs"}))
    assert classify(exempt, NOW, policy).finding is Finding.EXEMPT
    assert classify(key(400, groups=frozenset({"devs"})), NOW, policy).finding is (
        Finding.DEACTIVATE
    )


def test_unread_tags_never_exempt() -> None:
    policy = PolicySettings(exempt_tags={"keyturn:exempt": "true"})
    assert classify(key(400, tags=None), NOW, policy).finding is Finding.DEACTIVATE


@given(
    younger=st.floats(min_value=0, max_value=2000),
    extra=st.floats(min_value=0, max_value=2000),
)
def test_findings_never_get_milder_as_a_key_ages(younger: float, extra: float) -> None:
    order = [Finding.OK, Finding.NOTIFY, Finding.DEACTIVATE]
    before = classify(key(younger), NOW, DEFAULT).finding
    after = classify(key(younger + extra), NOW, DEFAULT).finding
    assert order.index(after) >= order.index(before)


def test_out_of_policy_findings() -> None:
    assert {f for f in Finding if f.out_of_policy} == {
        Finding.NOTIFY,
        Finding.UNUSED,
        Finding.DEACTIVATE,
        Finding.DELETE,
    }
