"""The pure lease core: durations, names, roles, TTL math, lease ids (no servers)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.errors import BadInputError
from keyturn.domain.leases import (
    DEFAULT_TTL,
    CredentialType,
    Lease,
    LeaseState,
    NameParts,
    Role,
    check_prefix,
    check_template,
    format_duration,
    issue_window,
    parse_duration,
    parse_lease_id,
    render_name,
    renewed,
    under_prefix,
    username_pattern,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = "arn:aws:iam::123456789012:policy/ro"


def user_role(**fields: object) -> Role:
    values: dict[str, object] = {"credential_type": "iam_user", "policy_arns": [POLICY]}
    values.update(fields)
    return Role.build("dev", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("768h", 768 * 3600),
        ("2d", 172800),
        ("1h30m", 5400),
        ("3600", 3600),
    ],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "1.5h", "-1h", "0s", "1h 30m", "soon"])
def test_bad_durations_are_bad_input(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_then_parse_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def parts(**overrides: object) -> NameParts:
    base = NameParts("keyturn", "alice", "dev", 1_700_000_000, "abcdefghij" * 4)
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_default_template_renders_like_vault() -> None:
    name = render_name(user_role().template, parts())
    assert name == "keyturn-alice-dev-1700000000-abcdefgh"


def test_display_name_is_cleaned_and_truncated() -> None:
    name = render_name(user_role().template, parts(display_name="Alice Smith/ops!" * 4))
    assert name.startswith("keyturn-Alice-Smith-")
    assert len(name) <= 64


@given(
    st.text(max_size=200),
    st.text(alphabet="abc", min_size=1, max_size=64),
    st.text(alphabet="k-", min_size=1, max_size=12),
)
def test_default_template_always_gives_a_valid_iam_name(
    display: str, role: str, prefix: str
) -> None:
    """Any display name, any role name, any configured prefix (<= 12): a valid IAM name."""
    name = render_name(user_role().template, parts(display_name=display, role=role, prefix=prefix))
    assert 2 <= len(name) <= 64
    assert all(ch.isascii() and (ch.isalnum() or ch in "+=,.@_-") for ch in name)


@pytest.mark.parametrize(
    "template",
    [
        "{prefix}-{unknown}-{random}",  # unknown field
        "{prefix}-{role",  # unbalanced
        "{prefix}-{role}",  # no random: names would collide
        "{prefix} {random}",  # space is not allowed in IAM names
        "{prefix}-{random:2}",  # random too short
        "user-{random}",  # must start with {prefix} (tidy relies on it)
    ],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(BadInputError):
        check_template(template)


def test_template_that_can_overflow_64_is_refused_at_role_write() -> None:
    role = user_role(username_template="{prefix}-{display_name}-{role}-{random:32}")
    with pytest.raises(BadInputError, match="IAM allows 64"):
        role.check_renders("keyturn")


def test_federation_names_are_limited_to_32() -> None:
    role = Role.build("fed", credential_type="federation_token", policy_arns=[POLICY])
    role.check_renders("keyturn")
    long = Role.build(
        "fed",
        credential_type="federation_token",
        policy_arns=[POLICY],
        username_template="{prefix}-{display_name:20}-{random:8}",
    )
    with pytest.raises(BadInputError, match="allows 32"):
        long.check_renders("keyturn")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"credential_type": "root"}, "credential_type"),
        ({"policy_arns": ["not-an-arn"]}, "not an IAM policy ARN"),
        ({"policy_document": "{not json"}, "not valid JSON"),
        ({"policy_document": "[1, 2]"}, "JSON object"),
        ({"policy_arns": [], "policy_document": None}, "needs policy_arns"),
        ({"user_path": "keyturn"}, "user_path"),
        ({"default_ttl": "2h", "max_ttl": "1h"}, "longer than max_ttl"),
        ({"max_ttl": "soon"}, "not a duration"),
        ({"iam_tags": {"keyturn:lease-id": "x"}}, "reserved"),
        ({"role_arns": ["arn:aws:iam::123456789012:role/x"]}, "only for assumed_role"),
        ({"iam_groups": ["bad group"]}, "group name"),
    ],
)
def test_role_validation(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        user_role(**fields)


def test_sts_roles_have_sts_limits() -> None:
    arn = "arn:aws:iam::123456789012:role/app"
    with pytest.raises(BadInputError, match="exactly one role_arns"):
        Role.build("a", credential_type="assumed_role")
    with pytest.raises(BadInputError, match="outside what STS allows"):
        Role.build("a", credential_type="assumed_role", role_arns=[arn], max_ttl="13h")
    with pytest.raises(BadInputError, match="only for iam_user"):
        Role.build("a", credential_type="assumed_role", role_arns=[arn], iam_groups=["g"])
    role = Role.build("a", credential_type="assumed_role", role_arns=[arn])
    assert role.effective_default_ttl == timedelta(hours=1)
    assert role.effective_max_ttl == timedelta(hours=12)


def test_role_round_trips_through_its_dict() -> None:
    role = user_role(
        policy_document='{"Statement": [], "Version": "2012-10-17"}',
        iam_groups=["devs"],
        iam_tags={"team": "a"},
        user_path="/keyturn/",
        default_ttl="1h",
        max_ttl="2h",
    )
    again = Role.from_dict(json.loads(json.dumps(role.to_dict())))
    assert again == role


def test_default_ttl_is_768h_and_a_ttl_above_max_is_refused() -> None:
    role = user_role()
    window = issue_window(role, NOW, None)
    assert window.expires - NOW == DEFAULT_TTL
    capped = user_role(max_ttl="2h")
    assert issue_window(capped, NOW, None).expires - NOW == timedelta(hours=2)
    with pytest.raises(BadInputError, match="longer than role dev's max_ttl 2h"):
        issue_window(capped, NOW, timedelta(hours=3))


def lease(**fields: object) -> Lease:
    base = Lease(
        lease_id="aws/creds/dev/abcdefghijklmnop",
        role="dev",
        kind=CredentialType.IAM_USER,
        state=LeaseState.ACTIVE,
        issued=NOW,
        expires=NOW + timedelta(hours=1),
        max_expires=NOW + timedelta(hours=2),
        principal="keyturn-x",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_renew_is_clamped_to_max_with_a_warning() -> None:
    later = NOW + timedelta(minutes=30)
    renewed_lease, warning = renewed(lease(), later, timedelta(hours=1))
    assert renewed_lease.expires == later + timedelta(hours=1)
    assert warning is None
    clamped, warning = renewed(lease(), later, timedelta(hours=5))
    assert clamped.expires == NOW + timedelta(hours=2)
    assert warning is not None
    assert "max TTL" in warning


def test_sts_and_dead_leases_do_not_renew() -> None:
    with pytest.raises(BadInputError, match="cannot be renewed"):
        renewed(lease(kind=CredentialType.FEDERATION_TOKEN), NOW, timedelta(hours=1))
    with pytest.raises(BadInputError, match="REVOKED"):
        renewed(lease(state=LeaseState.REVOKED), NOW, timedelta(hours=1))
    with pytest.raises(BadInputError, match="expired"):
        renewed(lease(), NOW + timedelta(hours=3), timedelta(hours=1))


def test_lease_round_trips_and_never_holds_a_secret() -> None:
    original = lease(key_id="AKIAEXAMPLE", claimed_until=NOW, last_error="x", attempts=2)
    assert Lease.from_dict(json.loads(json.dumps(original.to_dict()))) == original
    assert "secret" not in json.dumps(original.to_dict()).lower()


@pytest.mark.parametrize(
    "text",
    [
        "aws/creds/dev",
        "aws/creds//abcdefghij",
        "creds/dev/abcdefghij",
        "aws/creds/dev/abc",
        "aws/creds/d v/abcdefghij",
        "aws/creds/dev/abcdefghij/x",
    ],
)
def test_malformed_lease_ids(text: str) -> None:
    with pytest.raises(BadInputError, match="not a lease id"):
        parse_lease_id(text)


def test_prefix_must_name_a_role() -> None:
    assert check_prefix("aws/creds/dev") == "aws/creds/dev"
    for bad in ("aws/creds/", "aws/", "", "dev"):
        with pytest.raises(BadInputError):
            check_prefix(bad)


def test_claims_expire() -> None:
    claimed = lease(state=LeaseState.REVOKING, claimed_until=NOW + timedelta(minutes=5))
    assert not claimed.claimable(NOW)
    assert claimed.claimable(NOW + timedelta(minutes=5))
    assert not lease(state=LeaseState.REVOKED).claimable(NOW)
    assert not lease(state=LeaseState.IRREVOCABLE).claimable(NOW)


# -- prefixes by whole path segments (issue 12, item 7) -------------------------------------


@pytest.mark.parametrize(
    ("prefix", "lease_id", "inside"),
    [
        ("aws/creds/dev", "aws/creds/dev/abcdefghij", True),
        ("aws/creds/dev/", "aws/creds/dev/abcdefghij", True),
        ("aws/creds/dev", "aws/creds/dev-admin/abcdefghij", False),
        ("aws/creds/dev", "aws/creds/developers/abcdefghij", False),
        ("aws/creds/dev/", "aws/creds/developers/abcdefghij", False),
        ("aws/creds/dev/abc", "aws/creds/dev/abcdefghij", False),
        ("aws/creds/dev/abcdefghij", "aws/creds/dev/abcdefghij", True),
        ("aws/creds/", "aws/creds/dev/abcdefghij", True),
        ("aws/creds", "aws/credsx/dev/abcdefghij", False),
    ],
)
def test_prefixes_match_whole_path_segments(prefix: str, lease_id: str, inside: bool) -> None:
    assert under_prefix(prefix, lease_id) is inside


@given(st.text(alphabet="abdev-_.", min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_a_role_prefix_never_covers_a_role_it_is_only_a_string_prefix_of(
    role: str, tail: str
) -> None:
    other = role + tail
    if "/" in tail:
        return
    assert not under_prefix(f"aws/creds/{role}", f"aws/creds/{other}/abcdefghij")


# -- username structure (issue 12, item 6) --------------------------------------------------


def test_username_pattern_matches_what_the_template_renders() -> None:
    role = user_role()
    pattern = username_pattern(role.template, "keyturn", "dev")
    assert pattern.match(render_name(role.template, parts()))
    assert pattern.match(render_name(role.template, parts(display_name="")))
    for look_alike in (
        "keyturn-deployer",
        "keyturn-alice-dev-1700000000",  # no random part
        "keyturn-alice-dev-1700000000-ABCDEFGH",  # keyturn's random is lower case
        "keyturn-alice-ops-1700000000-abcdefgh",  # another role
        "keyturn-alice-dev-1700000000-abcdefgh-x",  # a suffix
        "xkeyturn-alice-dev-1700000000-abcdefgh",
        "keyturn-alice-toolongdisplayname-dev-1700000000-abcdefgh",  # display_name:12
    ):
        assert not pattern.match(look_alike), look_alike


@given(
    st.text(max_size=80),
    st.text(alphabet="abcdefgh-_.", min_size=1, max_size=40),
    st.integers(min_value=0, max_value=9_999_999_999),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=32, max_size=32),
)
def test_every_rendered_name_has_its_template_structure(
    display: str, role: str, unix_time: int, random: str
) -> None:
    for template in (
        user_role().template,
        "{prefix}.{role:8}@{random:6}",
        "{prefix}-{display_name}-{unix_time}-{random:16}",
    ):
        name = render_name(template, NameParts("keyturn", display, role, unix_time, random), 999)
        assert username_pattern(template, "keyturn", role).match(name), (template, name)


# -- renew never moves an expiry earlier (issue 13, item 9) ---------------------------------


def test_renew_never_moves_the_expiry_earlier() -> None:
    long = lease(expires=NOW + timedelta(hours=8), max_expires=NOW + timedelta(hours=768))
    later = NOW + timedelta(minutes=1)
    kept, warning = renewed(long, later, timedelta(hours=1))  # the role's default: 1h
    assert kept.expires == long.expires
    assert warning is not None
    assert "never shortens" in warning


def test_renew_boundaries() -> None:
    base = lease(expires=NOW + timedelta(hours=1), max_expires=NOW + timedelta(hours=2))
    # exactly the current expiry: no change, no warning
    same, warning = renewed(base, NOW, timedelta(hours=1))
    assert (same.expires, warning) == (base.expires, None)
    # exactly the max: allowed, no warning
    at_max, warning = renewed(base, NOW, timedelta(hours=2))
    assert (at_max.expires, warning) == (base.max_expires, None)
    # one second past the max: capped, and said so
    capped, warning = renewed(base, NOW, timedelta(hours=2, seconds=1))
    assert capped.expires == base.max_expires
    assert warning is not None
    assert "max TTL" in warning
    # one second short of the current expiry: kept, and said so
    kept, warning = renewed(base, NOW, timedelta(hours=1) - timedelta(seconds=1))
    assert kept.expires == base.expires
    assert warning is not None
    assert "never shortens" in warning
    # at the instant of expiry it is expired
    with pytest.raises(BadInputError, match="expired"):
        renewed(base, base.expires, timedelta(hours=1))


@given(
    st.integers(min_value=0, max_value=3600),
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=0, max_value=7200),
)
def test_renew_never_goes_back_nor_past_max(elapsed: int, increment: int, extra: int) -> None:
    base = lease(
        expires=NOW + timedelta(seconds=3601),
        max_expires=NOW + timedelta(seconds=3601 + extra),
    )
    out, _ = renewed(base, NOW + timedelta(seconds=elapsed), timedelta(seconds=increment))
    assert base.expires <= out.expires <= base.max_expires


def test_renew_of_a_lease_being_revoked_is_refused() -> None:
    with pytest.raises(BadInputError, match="being revoked"):
        renewed(lease(state=LeaseState.REVOKING), NOW, timedelta(hours=1))


def test_an_expired_active_lease_shows_expired() -> None:
    active = lease()
    assert active.status(NOW) == "ACTIVE"
    assert active.status(active.expires) == "EXPIRED"
    assert lease(state=LeaseState.REVOKED).status(active.expires) == "REVOKED"
