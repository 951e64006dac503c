"""The lease core's edges that mutation testing found untested (issue 18).

TTL math (an STS role's max_ttl is honoured, max_expires lies after now, STS's 15-minute
floor and 12/36-hour ceilings are inclusive), the permissions-boundary check, a lease's
record keeping every field revoke relies on (the grant's inline policy), revoke-prefix
checks, name templates at their edges, and the exact refusals `role write` and `creds`
print. Expected values are written out, not read from the module.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.errors import BadInputError
from keyturn.domain.leases import (
    CredentialType,
    Grant,
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

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
BOUNDARY = "arn:aws:iam::123456789012:policy/Boundary"
ROLE_ARN = "arn:aws:iam::123456789012:role/deployer"


def refused(message: str) -> pytest.RaisesContext[BadInputError]:
    return pytest.raises(BadInputError, match=f"^{re.escape(message)}$")


# -- TTL math ------------------------------------------------------------------------------


def test_an_assumed_role_capped_at_one_hour_never_issues_more() -> None:
    role = Role.build("ops", credential_type="assumed_role", role_arns=[ROLE_ARN], max_ttl="1h")
    assert role.effective_max_ttl == timedelta(hours=1)
    assert role.effective_default_ttl == timedelta(hours=1)
    window = issue_window(role, NOW, None)
    assert (window.expires, window.max_expires) == (NOW + timedelta(hours=1),) * 2
    with refused("--ttl 12h is longer than role ops's max_ttl 1h: ask for 1h or less"):
        issue_window(role, NOW, timedelta(hours=12))


def test_a_federation_role_capped_at_two_hours_defaults_to_one() -> None:
    role = Role.build("fed", credential_type="federation_token", policy_arns=[POLICY], max_ttl="2h")
    assert (role.effective_default_ttl, role.effective_max_ttl) == (
        timedelta(hours=1),
        timedelta(hours=2),
    )
    uncapped = Role.build("fed", credential_type="federation_token", policy_arns=[POLICY])
    assert uncapped.effective_max_ttl == timedelta(hours=36)
    assumed = Role.build("a", credential_type="assumed_role", role_arns=[ROLE_ARN])
    assert assumed.effective_max_ttl == timedelta(hours=12)


def test_an_iam_user_window_ends_after_now() -> None:
    role = Role.build("dev", credential_type="iam_user", policy_arns=[POLICY], max_ttl="48h")
    window = issue_window(role, NOW, timedelta(hours=2))
    assert window.expires == NOW + timedelta(hours=2)
    assert window.max_expires == NOW + timedelta(hours=48)
    assert issue_window(role, NOW, timedelta(hours=48)).expires == NOW + timedelta(hours=48)
    default = Role.build("dev", credential_type="iam_user", policy_arns=[POLICY])
    assert issue_window(default, NOW, None).max_expires == NOW + timedelta(hours=768)


@pytest.mark.parametrize(
    ("kind", "ttl", "ok"),
    [
        ("assumed_role", "899s", False),
        ("assumed_role", "900s", True),
        ("assumed_role", "12h", True),
        ("assumed_role", "43201s", False),
        ("federation_token", "36h", True),
        ("federation_token", "129601s", False),
    ],
)
@pytest.mark.parametrize("label", ["default_ttl", "max_ttl"])
def test_sts_ttl_edges(kind: str, ttl: str, ok: bool, label: str) -> None:
    extra: dict[str, object] = (
        {"role_arns": [ROLE_ARN]} if kind == "assumed_role" else {"policy_arns": [POLICY]}
    )
    build = lambda: Role.build("s", credential_type=kind, **{label: ttl}, **extra)  # noqa: E731
    if ok:
        assert getattr(build(), label) == parse_duration(ttl)
        return
    ceiling = "12h" if kind == "assumed_role" else "36h"
    shown = format_duration(parse_duration(ttl))
    with refused(
        f"role s: {label} {shown} is outside what STS allows for {kind} (15m to {ceiling})"
    ):
        build()


def test_an_sts_ttl_under_15_minutes_is_refused_at_issue() -> None:
    role = Role.build("a", credential_type="assumed_role", role_arns=[ROLE_ARN])
    with refused("--ttl 14m59s: STS credentials last at least 15m"):
        issue_window(role, NOW, timedelta(seconds=899))
    assert issue_window(role, NOW, timedelta(seconds=900)).expires == NOW + timedelta(minutes=15)


# -- roles ---------------------------------------------------------------------------------


def test_the_permissions_boundary_is_checked_and_kept() -> None:
    role = Role.build(
        "dev", credential_type="iam_user", policy_arns=[POLICY], permissions_boundary_arn=BOUNDARY
    )
    assert role.permissions_boundary_arn == BOUNDARY
    with refused(
        "role dev: permissions_boundary_arn 'arn:aws:s3:::bucket' is not an IAM policy ARN"
    ):
        Role.build(
            "dev",
            credential_type="iam_user",
            policy_arns=[POLICY],
            permissions_boundary_arn="arn:aws:s3:::bucket",
        )
    unset = Role.build(
        "dev", credential_type="iam_user", policy_arns=[POLICY], permissions_boundary_arn=""
    )
    assert unset.permissions_boundary_arn is None


DEV_PATTERN = "arn:aws:iam::123456789012:role/dev-*"
ALICE = "arn:aws:iam::123456789012:user/alice"


def test_a_full_role_keeps_every_field_through_its_dict() -> None:
    role = Role.build(
        "dev",
        credential_type="iam_user",
        policy_arns=[POLICY, POLICY],
        policy_document='{"Version": "2012-10-17", "Statement": []}',
        iam_groups=["devs", "devs", "ops"],
        iam_tags={"team": "core"},
        permissions_boundary_arn=BOUNDARY,
        user_path="/keyturn/",
        default_ttl="1h30m",
        max_ttl="2d",
        username_template="{prefix}-{role}-{random:6}",
        source="keyturn.toml",
        allowed_principals=[DEV_PATTERN, DEV_PATTERN, ALICE],
        admin_principals=[ALICE],
    )
    expected = {
        "name": "dev",
        "credential_type": "iam_user",
        "policy_arns": [POLICY],
        "policy_document": '{"Statement":[],"Version":"2012-10-17"}',
        "iam_groups": ["devs", "ops"],
        "iam_tags": {"team": "core"},
        "permissions_boundary_arn": BOUNDARY,
        "user_path": "/keyturn/",
        "role_arns": [],
        "default_ttl": "1h30m",
        "max_ttl": "48h",
        "username_template": "{prefix}-{role}-{random:6}",
        "source": "keyturn.toml",
        "allowed_principals": [DEV_PATTERN, ALICE],
        "admin_principals": [ALICE],
    }
    assert role.to_dict() == expected
    assert Role.from_dict(expected) == role
    sts = Role.build("a", credential_type="assumed_role", role_arns=[ROLE_ARN, ROLE_ARN])
    assert sts.to_dict()["role_arns"] == [ROLE_ARN]
    assert (sts.to_dict()["default_ttl"], sts.to_dict()["max_ttl"]) == (None, None)


IAM = {"credential_type": "iam_user", "policy_arns": [POLICY]}
ASSUMED = {"credential_type": "assumed_role", "role_arns": [ROLE_ARN]}
FED = {"credential_type": "federation_token", "policy_arns": [POLICY]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"credential_type": "root"},
            "role r: credential_type 'root' is not one of iam_user, assumed_role, federation_token",
        ),
        ({**IAM, "policy_arns": ["nope"]}, "role r: 'nope' is not an IAM policy ARN"),
        ({**IAM, "iam_groups": ["a b"]}, "role r: 'a b' is not a valid IAM group name"),
        ({**IAM, "iam_tags": {"aws:x": "1"}}, "role r: tag key 'aws:x' uses a reserved prefix"),
        (
            {**IAM, "iam_tags": {"Keyturn:x": "1"}},
            "role r: tag key 'Keyturn:x' uses a reserved prefix",
        ),
        ({**IAM, "iam_tags": {"a": "{"}}, "role r: tag 'a'='{' is not a valid IAM tag"),
        ({**IAM, "iam_tags": {"{": "a"}}, "role r: tag '{'='a' is not a valid IAM tag"),
        (
            {**IAM, "iam_tags": {f"t{i}": "v" for i in range(48)}},
            "role r: at most 47 iam_tags (keyturn adds 3)",
        ),
        (
            {**IAM, "user_path": "keyturn/"},
            "role r: user_path 'keyturn/' must start and end with '/' (e.g. /keyturn/)",
        ),
        (
            {**IAM, "user_path": "/a//b/"},
            "role r: user_path '/a//b/' must start and end with '/' (e.g. /keyturn/)",
        ),
        ({**ASSUMED, "role_arns": ["nope"]}, "role r: 'nope' is not an IAM role ARN"),
        (
            {**IAM, "default_ttl": "2h", "max_ttl": "1h"},
            "role r: default_ttl 2h is longer than max_ttl 1h",
        ),
        ({**IAM, "role_arns": [ROLE_ARN]}, "role r: role_arns is only for assumed_role"),
        (
            {"credential_type": "iam_user"},
            "role r: an iam_user role needs policy_arns, policy_document or iam_groups (a user"
            " with no permissions is useless)",
        ),
        ({**ASSUMED, "iam_groups": ["g"]}, "role r: iam_groups is only for iam_user roles"),
        ({**ASSUMED, "iam_tags": {"a": "b"}}, "role r: iam_tags is only for iam_user roles"),
        (
            {**ASSUMED, "permissions_boundary_arn": BOUNDARY},
            "role r: permissions_boundary_arn is only for iam_user roles",
        ),
        ({**ASSUMED, "user_path": "/x/"}, "role r: user_path is only for iam_user roles"),
        (
            {**ASSUMED, "role_arns": []},
            "role r: an assumed_role role needs exactly one role_arns entry",
        ),
        ({**FED, "role_arns": [ROLE_ARN]}, "role r: role_arns is only for assumed_role"),
        (
            {"credential_type": "federation_token"},
            "role r: a federation_token role needs policy_arns or policy_document (federated"
            " sessions get no permissions otherwise)",
        ),
        (
            {**IAM, "policy_document": "[1]"},
            "role r: policy_document must be a JSON object with Statement",
        ),
        (
            {**IAM, "policy_document": "{}"},
            "role r: policy_document must be a JSON object with Statement",
        ),
        (
            {**IAM, "policy_document": "{"},
            "role r: policy_document is not valid JSON (line 1, column 2: Expecting property"
            " name enclosed in double quotes)",
        ),
        (
            {**IAM, "policy_document": '{"Statement": "' + "x" * 10_300 + '"}'},
            "role r: policy_document is longer than 10240 characters",
        ),
    ],
)
def test_role_refusals_say_exactly_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with refused(message):
        Role.build("r", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"credential_type": "iam_user", "iam_groups": ["g"]},
        {"credential_type": "iam_user", "policy_document": '{"Statement": []}'},
        {"credential_type": "federation_token", "policy_document": '{"Statement": []}'},
        {**IAM, "iam_tags": {f"t{i}": "v" for i in range(47)}},
        {**IAM, "policy_document": '{"Statement": "' + "x" * 10_200 + '"}'},
    ],
)
def test_roles_at_the_edge_of_the_rules_are_accepted(fields: dict[str, object]) -> None:
    Role.build("r", **fields)  # type: ignore[arg-type]


def test_check_renders_uses_the_longest_inputs() -> None:
    tight = "{prefix}-{unix_time}-{random:32}"  # 2 + 10 + 1 + 32 with prefix "kt": 46
    Role.build("r", **IAM, username_template=tight).check_renders("kt")  # type: ignore[arg-type]
    fits = "{prefix}-{display_name:19}-{unix_time}-{random:32}"  # 2+1+19+1+10+1+32 = 66
    with refused(
        f"username template {fits!r} renders 66 characters; IAM allows 64: give long fields a"
        " limit such as {display_name:16}"
    ):
        Role.build("r", **IAM, username_template=fits).check_renders("kt")  # type: ignore[arg-type]
    exact = "{prefix}-{display_name:17}-{unix_time}-{random:32}"  # 64
    Role.build("r", **IAM, username_template=exact).check_renders("kt")  # type: ignore[arg-type]


# -- lease records -------------------------------------------------------------------------


def full_lease() -> Lease:
    return Lease(
        lease_id="aws/creds/dev/abcdefgh",
        role="dev",
        kind=CredentialType.IAM_USER,
        state=LeaseState.REVOKING,
        issued=NOW,
        expires=NOW + timedelta(hours=1),
        max_expires=NOW + timedelta(hours=2),
        principal="kt-alice-dev",
        key_id="AKIAKEY0000000000000",
        grant=Grant(policy_arns=(POLICY,), inline_policy="keyturn-inline", groups=("devs",)),
        attempts=3,
        claimed_until=NOW + timedelta(minutes=5),
        last_error="throttled",
        updated=NOW + timedelta(minutes=1),
        version=7,
        owner="arn:aws:iam::123456789012:user/alice",
        owner_id="AIDAALICE0000000001",
    )


def test_a_lease_keeps_every_field_through_its_dict() -> None:
    lease = full_lease()
    data = lease.to_dict()
    assert data == {
        "lease_id": "aws/creds/dev/abcdefgh",
        "role": "dev",
        "kind": "iam_user",
        "state": "REVOKING",
        "issued": "2026-03-01T12:00:00+00:00",
        "expires": "2026-03-01T13:00:00+00:00",
        "max_expires": "2026-03-01T14:00:00+00:00",
        "principal": "kt-alice-dev",
        "key_id": "AKIAKEY0000000000000",
        "grant": {"policy_arns": [POLICY], "inline_policy": "keyturn-inline", "groups": ["devs"]},
        "attempts": 3,
        "claimed_until": "2026-03-01T12:05:00+00:00",
        "last_error": "throttled",
        "updated": "2026-03-01T12:01:00+00:00",
        "version": 7,
        "owner": "arn:aws:iam::123456789012:user/alice",
        "owner_id": "AIDAALICE0000000001",
    }
    assert Lease.from_dict(data) == lease
    # recorded before unique ids were (ARN alone), or with an empty one: no owner id
    by_arn = {key: value for key, value in data.items() if key != "owner_id"}
    assert Lease.from_dict(by_arn) == replace(lease, owner_id=None)
    assert Lease.from_dict({**data, "owner_id": ""}).owner_id is None
    assert Lease.from_dict({**data, "owner_id": None}).owner_id is None


def test_a_minimal_lease_record_reads_with_its_defaults() -> None:
    data = {
        "lease_id": "aws/creds/dev/abcdefgh",
        "role": "dev",
        "kind": "assumed_role",
        "state": "ACTIVE",
        "issued": "2026-03-01T12:00:00+00:00",
        "expires": "2026-03-01T13:00:00+00:00",
        "max_expires": "2026-03-01T13:00:00+00:00",
        "principal": "session",
    }
    lease = Lease.from_dict(data)
    assert lease == Lease(
        lease_id="aws/creds/dev/abcdefgh",
        role="dev",
        kind=CredentialType.ASSUMED_ROLE,
        state=LeaseState.ACTIVE,
        issued=NOW,
        expires=NOW + timedelta(hours=1),
        max_expires=NOW + timedelta(hours=1),
        principal="session",
    )
    assert Lease.from_dict({**data, "grant": None}).grant == Grant()
    unclaimed = Lease.from_dict({**data, "claimed_until": "", "updated": None})
    assert (unclaimed.claimed_until, unclaimed.updated) == (None, None)


def test_a_revoking_lease_is_claimable_once_its_claim_ran_out() -> None:
    lease = full_lease()  # REVOKING, claimed until NOW + 5 min
    assert not lease.claimable(NOW + timedelta(minutes=4))
    assert lease.claimable(NOW + timedelta(minutes=5))


# -- lease ids and revoke prefixes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("aws/creds/dev", None),
        ("aws/creds/dev/abcdefgh", None),
        ("aws/creds/dev/", None),
        ("aws/creds/", "prefix 'aws/creds/' must start with aws/creds/ROLE (e.g. aws/creds/dev)"),
        (
            "aws/credsdev",
            "prefix 'aws/credsdev' must start with aws/creds/ROLE (e.g. aws/creds/dev)",
        ),
        (
            "secret/aws/creds/dev",
            "prefix 'secret/aws/creds/dev' must start with aws/creds/ROLE (e.g. aws/creds/dev)",
        ),
        ("aws/creds//x", "prefix 'aws/creds//x': '' is not a role name"),
        ("aws/creds/de v", "prefix 'aws/creds/de v': 'de v' is not a role name"),
        (
            "aws/creds/" + "r" * 65,
            f"prefix 'aws/creds/{'r' * 65}': '{'r' * 65}' is not a role name",
        ),
    ],
)
def test_check_prefix_accepts_only_role_prefixes(prefix: str, message: str | None) -> None:
    if message is None:
        assert check_prefix(prefix) == prefix
    else:
        with refused(message):
            check_prefix(prefix)


def test_lease_id_refusal_names_the_form() -> None:
    assert parse_lease_id("aws/creds/dev/abcdefgh") == ("dev", "abcdefgh")
    with refused("'aws/creds/dev' is not a lease id (expected aws/creds/ROLE/ID)"):
        parse_lease_id("aws/creds/dev")
    with refused("'x/aws/creds/dev/abcdefgh' is not a lease id (expected aws/creds/ROLE/ID)"):
        parse_lease_id("x/aws/creds/dev/abcdefgh")


# -- durations and name templates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "allow_zero", "message"),
    [
        ("0", False, "duration: '0' must be longer than zero"),
        ("0s", False, "duration: '0s' must be longer than zero"),
        ("3153600001", False, "duration: '3153600001' is longer than 100 years"),
        ("1x", False, "duration: '1x' is not a duration (examples: 90s, 30m, 1h, 768h, 2d, 1h30m)"),
    ],
)
def test_duration_refusals(text: str, allow_zero: bool, message: str) -> None:
    with refused(message):
        parse_duration(text, allow_zero=allow_zero)


def test_duration_edges() -> None:
    assert parse_duration("0", allow_zero=True) == timedelta(0)
    assert parse_duration("1") == timedelta(seconds=1)
    assert parse_duration("3153600000") == timedelta(days=36500)
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(seconds=-5)) == "0s"
    assert format_duration(timedelta(hours=1, minutes=2, seconds=3)) == "1h2m3s"


TEMPLATE_REFUSALS = [
    (
        "{prefix}-{who}-{random}",
        "username template '{prefix}-{who}-{random}': unknown field {who} (known: display_name,"
        " prefix, random, role, unix_time)",
    ),
    (
        "{prefix}-{role:0}-{random}",
        "username template '{prefix}-{role:0}-{random}': {role:0} is empty",
    ),
    (
        "{prefix}-{random:3}",
        "username template '{prefix}-{random:3}': {random:N} needs 4 <= N <= 32",
    ),
    (
        "{prefix}-{random:33}",
        "username template '{prefix}-{random:33}': {random:N} needs 4 <= N <= 32",
    ),
    (
        "{prefix}-{random}}",
        "username template '{prefix}-{random}}': unbalanced or malformed braces",
    ),
    (
        "{prefix}{-{random}",
        "username template '{prefix}{-{random}': unbalanced or malformed braces",
    ),
    (
        "{prefix}-{random}-}",
        "username template '{prefix}-{random}-}': unbalanced or malformed braces",
    ),
    (
        "{prefix} {random}",
        "username template '{prefix} {random}': ' ' has characters IAM names do not allow"
        " (allowed: letters, digits and +=,.@_-)",
    ),
    (
        "{prefix}-{random}!",
        "username template '{prefix}-{random}!': '!' has characters IAM names do not allow"
        " (allowed: letters, digits and +=,.@_-)",
    ),
    (
        "x{prefix}-{random}",
        "username template 'x{prefix}-{random}' must start with {prefix}: `lease tidy` looks"
        " for orphaned users by that prefix and never touches other users",
    ),
    (
        "{prefix}-{role}",
        "username template '{prefix}-{role}' has no {random} field: names would collide",
    ),
]


@pytest.mark.parametrize(("template", "message"), TEMPLATE_REFUSALS)
def test_template_refusals(template: str, message: str) -> None:
    with refused(message):
        check_template(template)


@pytest.mark.parametrize(
    "template", ["{prefix}-{random:4}", "{prefix}-{random:32}", "{prefix}-{role:1}-{random}"]
)
def test_templates_at_the_edges_are_accepted(template: str) -> None:
    check_template(template)


PARTS = NameParts("kt", "alice smith", "dev", 1_767_225_600, "abcdefghij" * 4)


def test_render_defaults_and_edges() -> None:
    assert render_name("{prefix}{random}", PARTS) == "ktabcdefgh"
    assert render_name("{prefix}{random:4}", PARTS, limit=6) == "ktabcd"
    with refused(
        "username template '{prefix}{random:5}' renders 7 characters; IAM allows 6: give long"
        " fields a limit such as {display_name:16}"
    ):
        render_name("{prefix}{random:5}", PARTS, limit=6)
    short = NameParts("", "x", "dev", 1, "abcdefghij" * 4)
    assert render_name("{prefix}{random:4}", short) == "abcd"
    with refused("username template '{prefix}{random:4}' renders a name shorter than 2"):
        render_name("{prefix}{random:4}", NameParts("", "", "", 1, "a"))
    assert render_name("{prefix}{random:4}", NameParts("", "", "", 1, "ab")) == "ab"


def test_username_pattern_follows_the_template_exactly() -> None:
    pattern = username_pattern("{prefix}.{role}-{unix_time}-{random}", "kt/x", "dév")
    assert pattern.pattern.startswith("^kt\\-x\\.d\\-v\\-")
    assert pattern.match("kt-x.d-v-1767225600-abcdefgh")
    assert not pattern.match("kt-x.d-v-1767225600-abcdefg")
    assert not pattern.match("kt-x.d-v-1767225600-abcdefghi")
    assert not pattern.match("kt-x.d-v-١٧٦٧-abcdefgh")  # Arabic-Indic digits are not [0-9]


@given(st.integers(0, 10**12))
def test_unix_time_renders_as_plain_digits(unix_time: int) -> None:
    parts = NameParts("kt", "a", "dev", unix_time, "0" * 32)
    name = render_name("{prefix}-{unix_time}-{random}", parts)
    assert name == f"kt-{unix_time}-00000000"


# -- second pass: the survivors of the first measured run ----------------------------------


def test_a_stray_character_before_the_prefix_is_named_as_such() -> None:
    with refused(
        "username template '!{prefix}-{random}': '!' has characters IAM names do not allow"
        " (allowed: letters, digits and +=,.@_-)"
    ):
        check_template("!{prefix}-{random}")
    with refused("username template '{{prefix}-{random}': unbalanced or malformed braces"):
        check_template("{{prefix}-{random}")


def test_username_pattern_pins_unix_time_and_ascii() -> None:
    pattern = username_pattern("{prefix}-{unix_time}-{display_name}-{random}", "kt", "dev")
    assert pattern.match("kt-1767225600-alice-abcdefgh")
    assert not pattern.match("kt-abc-alice-abcdefgh")
    assert not pattern.match("kt-1767225600-dév-abcdefgh")


def test_role_defaults_and_ttl_messages() -> None:
    role = Role.build("r", **IAM, default_ttl="", max_ttl=None)  # type: ignore[arg-type]
    assert (role.source, role.default_ttl, role.max_ttl) == ("store", None, None)
    same = Role.build("r", **IAM, default_ttl="2h", max_ttl="2h")  # type: ignore[arg-type]
    assert same.default_ttl == same.max_ttl == timedelta(hours=2)
    with refused(
        "role r: default_ttl: 'soon' is not a duration (examples: 90s, 30m, 1h, 768h, 2d, 1h30m)"
    ):
        Role.build("r", **IAM, default_ttl="soon")  # type: ignore[arg-type]
    with refused(
        "role r: max_ttl: 'later' is not a duration (examples: 90s, 30m, 1h, 768h, 2d, 1h30m)"
    ):
        Role.build("r", **IAM, max_ttl="later")  # type: ignore[arg-type]
    with refused(
        "role name 'a b': use 1-64 letters, digits, '_', '.', '-' (it becomes part of the lease id)"
    ):
        Role.build("a b", **IAM)  # type: ignore[arg-type]


def test_a_policy_document_of_exactly_10240_characters_is_accepted() -> None:
    exact = '{"Statement":"' + "x" * 10224 + '"}'
    assert len(exact) == 10240
    assert Role.build("r", credential_type="iam_user", policy_document=exact).policy_document
    with refused("role r: policy_document is longer than 10240 characters"):
        Role.build("r", credential_type="iam_user", policy_document=exact[:-2] + 'x"}')


@pytest.mark.parametrize("prefix", ["aws/creds/Dev", "aws/creds/dev/x/y"])
def test_check_prefix_reads_only_the_first_segment(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


def test_a_lease_id_needs_the_prefix_itself() -> None:
    with refused("'xxxxxxxxxxdev/abcdefgh' is not a lease id (expected aws/creds/ROLE/ID)"):
        parse_lease_id("xxxxxxxxxxdev/abcdefgh")


def test_under_prefix_strips_only_slashes_and_an_empty_prefix_covers_all() -> None:
    assert not under_prefix("aws/creds/devX", "aws/creds/dev/abcdefgh")
    assert under_prefix("aws/creds/dev/", "aws/creds/dev/abcdefgh")
    assert under_prefix("", "aws/creds/dev/abcdefgh")
    assert under_prefix("/", "aws/creds/dev/abcdefgh")


def test_live_leases_are_claimable_and_a_fresh_record_writes_no_claim() -> None:
    lease = replace(full_lease(), state=LeaseState.ACTIVE, claimed_until=None, updated=None)
    assert lease.claimable(NOW)
    assert replace(lease, state=LeaseState.PENDING).claimable(NOW)
    assert not replace(lease, state=LeaseState.REVOKED).claimable(NOW)
    data = lease.to_dict()
    assert (data["claimed_until"], data["updated"]) == (None, None)
    assert Lease.from_dict(data) == lease


def test_renew_stamps_the_time_and_sts_refusal_says_why() -> None:
    lease = replace(full_lease(), state=LeaseState.ACTIVE, claimed_until=None)
    later = NOW + timedelta(minutes=10)
    back, warning = renewed(lease, later, timedelta(minutes=55))
    assert (back.expires, back.updated, warning) == (later + timedelta(minutes=55), later, None)
    sts = replace(lease, kind=CredentialType.ASSUMED_ROLE)
    with refused(
        "aws/creds/dev/abcdefgh: assumed_role credentials cannot be renewed (STS fixes their"
        " expiry); issue new ones with `keyturn creds`"
    ):
        renewed(sts, later, timedelta(minutes=5))


def test_a_role_refuses_a_bad_principal_pattern_naming_its_list() -> None:
    bad = "arn:aws:iam::*:role/admin"
    start = f"{bad!r} is not an IAM user or role"
    with pytest.raises(BadInputError) as allowed:
        Role.build(
            "dev", credential_type="iam_user", policy_arns=[POLICY], allowed_principals=[bad]
        )
    assert str(allowed.value).startswith(f"role dev: allowed_principals {start}")
    with pytest.raises(BadInputError) as admin:
        Role.build("dev", credential_type="iam_user", policy_arns=[POLICY], admin_principals=[bad])
    assert str(admin.value).startswith(f"role dev: admin_principals {start}")


def test_a_lease_without_an_owner_reads_as_none() -> None:
    data = full_lease().to_dict()
    assert Lease.from_dict({**data, "owner": ""}).owner is None
    assert Lease.from_dict({k: v for k, v in data.items() if k != "owner"}).owner is None
