"""The broker's authorization rules (keyturn.domain.authorization) as boundary tables, and
the property that no caller outside a role's patterns is ever allowed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.authorization import (
    Caller,
    CallerKind,
    canonical_caller,
    check_patterns,
    matches,
    may_issue,
    may_manage,
)
from keyturn.domain.errors import BadInputError

A = "123456789012"
ALICE = f"arn:aws:iam::{A}:user/alice"


@pytest.mark.parametrize(
    ("arn", "canonical", "kind", "session"),
    [
        (ALICE, ALICE, CallerKind.USER, None),
        (f"arn:aws:iam::{A}:user/team/alice", f"arn:aws:iam::{A}:user/team/alice", "user", None),
        (
            f"arn:aws:sts::{A}:assumed-role/dev/alice@corp",
            f"arn:aws:iam::{A}:role/dev",
            CallerKind.ROLE,
            "alice@corp",
        ),
        (
            f"arn:aws-cn:sts::{A}:assumed-role/dev/s",
            f"arn:aws-cn:iam::{A}:role/dev",
            CallerKind.ROLE,
            "s",
        ),
    ],
)
def test_canonical_caller(arn: str, canonical: str, kind: str, session: str | None) -> None:
    caller = canonical_caller(arn)
    assert (caller.arn, caller.kind, caller.session) == (canonical, kind, session)


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:iam::{A}:root",
        f"arn:aws:sts::{A}:federated-user/bob",
        f"arn:aws:sts::{A}:assumed-role/dev",  # no session
        f"arn:aws:iam::{A}:user/",
        "arn:aws:iam::12345:user/alice",
        "alice",
        "",
    ],
)
def test_other_identities_are_refused(arn: str) -> None:
    with pytest.raises(BadInputError):
        canonical_caller(arn)


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        (ALICE, ALICE, True),
        (ALICE, ALICE + "x", False),  # whole match, never a prefix
        (ALICE, f"arn:aws:iam::{A}:user/alic", False),
        (f"arn:aws:iam::{A}:user/ali*", ALICE, True),
        (f"arn:aws:iam::{A}:user/ali?e", ALICE, True),
        (f"arn:aws:iam::{A}:user/ali?", ALICE, False),
        (f"arn:aws:iam::{A}:user/*", f"arn:aws:iam::{A}:role/x", False),
        (f"arn:aws:iam::{A}:user/[a]lice", ALICE, False),  # [ is a literal
        (f"arn:aws:iam::{A}:role/dev-*", f"arn:aws:iam::{A}:role/dev-eu", True),
        (f"arn:aws:iam::{A}:role/dev-*", f"arn:aws:iam::{A}:role/dev", False),
        (f"arn:aws:iam::{A}:user/a.ice", ALICE, False),  # . is a literal
        (ALICE, "arn:aws:iam::210987654321:user/alice", False),  # another account
    ],
)
def test_pattern_matching(pattern: str, arn: str, expected: bool) -> None:
    assert matches(arn, [pattern]) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "arn:aws:iam::*:user/alice",  # every account in the world
        "arn:aws:iam::123:user/alice",
        f"arn:aws:sts::{A}:assumed-role/dev/*",
        f"arn:aws:iam::{A}:group/dev",
        f"arn:aws:iam::{A}:user/",
        f"arn:aws:iam::{A}:user/a lice",
    ],
)
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(BadInputError, match="pattern"):
        check_patterns("dev", "allowed_principals", [pattern])


@pytest.mark.parametrize(
    ("allowed", "admins", "who", "expected"),
    [
        ((), (), "alice", False),  # deny by default
        ((ALICE,), (), "alice", True),
        ((ALICE,), (), "bob", False),
        ((), (ALICE,), "alice", True),  # admins may lease too
        ((f"arn:aws:iam::{A}:user/a*",), (), "bob", False),
    ],
)
def test_may_issue(
    allowed: tuple[str, ...], admins: tuple[str, ...], who: str, expected: bool
) -> None:
    assert may_issue(user(who), "dev", allowed, admins).allowed is expected


ALICE_ID = "AIDAALICE00000000001"


def user(name: str, account: str = A, unique_id: str | None = None) -> Caller:
    return canonical_caller(f"arn:aws:iam::{account}:user/{name}", unique_id)


@pytest.mark.parametrize(
    ("owner", "owner_id", "admins", "who", "who_id", "expected"),
    [
        (ALICE, ALICE_ID, (), "alice", ALICE_ID, True),
        (ALICE, ALICE_ID, (), "bob", "AIDABOB0000000000001", False),
        (ALICE, ALICE_ID, (f"arn:aws:iam::{A}:user/bob",), "bob", "AIDABOB0000000000001", True),
        # alice deleted and created again: same ARN, a new unique id
        (ALICE, ALICE_ID, (), "alice", "AIDAALICE00000000002", False),
        (ALICE, ALICE_ID, (), "alice", None, False),
        # recorded by ARN alone (before unique ids): admins only, even for the same ARN
        (ALICE, None, (), "alice", ALICE_ID, False),
        (ALICE, None, (ALICE,), "alice", ALICE_ID, True),
        (None, None, (), "alice", ALICE_ID, False),  # an old lease: admins only
        (None, None, (ALICE,), "alice", ALICE_ID, True),
        (ALICE, ALICE_ID, (), "alice-2", ALICE_ID, False),
    ],
)
def test_may_manage(
    owner: str | None,
    owner_id: str | None,
    admins: tuple[str, ...],
    who: str,
    who_id: str | None,
    expected: bool,
) -> None:
    caller = user(who, unique_id=who_id)
    assert may_manage(caller, "aws/creds/dev/x", owner, admins, owner_id).allowed is expected


def test_an_assumed_role_session_owns_by_its_role_and_its_unique_id() -> None:
    role_id = "AROADEV0000000000001"
    one = canonical_caller(f"arn:aws:sts::{A}:assumed-role/dev/one", f"{role_id}:one")
    two = canonical_caller(f"arn:aws:sts::{A}:assumed-role/dev/two", f"{role_id}:two")
    assert (one.unique_id, two.unique_id) == (role_id, role_id)
    assert may_manage(two, "l", one.arn, (), one.unique_id).allowed
    other = canonical_caller(f"arn:aws:sts::{A}:assumed-role/dev2/one", f"{role_id}:one")
    assert not may_manage(other, "l", one.arn, (), one.unique_id).allowed
    reborn = canonical_caller(f"arn:aws:sts::{A}:assumed-role/dev/one", "AROADEV0000000000002:one")
    assert not may_manage(reborn, "l", one.arn, (), one.unique_id).allowed


@pytest.mark.parametrize("user_id", ["", "AIDA-x", "a" * 129, ":session", "AIDA 1234567"])
def test_a_malformed_unique_id_is_refused(user_id: str) -> None:
    with pytest.raises(BadInputError):
        canonical_caller(ALICE, user_id)


NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+=,.@_-", min_size=1, max_size=20)
PATTERN_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-*?", min_size=1, max_size=12
)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """An independent reading of the pattern language, for the property."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


@given(
    names=st.lists(PATTERN_NAME, min_size=0, max_size=4),
    admins=st.lists(PATTERN_NAME, min_size=0, max_size=2),
    caller=NAME,
    kind=st.sampled_from(["user", "role"]),
    account=st.sampled_from([A, "210987654321"]),
)
def test_no_caller_outside_the_patterns_is_ever_allowed(
    names: list[str], admins: list[str], caller: str, kind: str, account: str
) -> None:
    allowed = check_patterns(
        "dev", "allowed_principals", [f"arn:aws:iam::{A}:user/{n}" for n in names]
    )
    admin = check_patterns(
        "dev", "admin_principals", [f"arn:aws:iam::{A}:role/{n}" for n in admins]
    )
    if kind == "user":
        who = canonical_caller(f"arn:aws:iam::{account}:user/{caller}")
    else:
        who = canonical_caller(f"arn:aws:sts::{account}:assumed-role/{caller}/s")
    inside = any(_glob_regex(p).fullmatch(who.arn) for p in (*allowed, *admin))
    assert may_issue(who, "dev", allowed, admin).allowed is inside
    if account != A:
        assert not may_issue(who, "dev", allowed, admin).allowed
    assert may_manage(who, "l", None, admin).allowed is any(
        _glob_regex(p).fullmatch(who.arn) for p in admin
    )


def test_a_world_wide_pattern_in_the_config_is_one_clear_error(tmp_path: Any) -> None:
    from keyturn.config import load_settings
    from keyturn.domain.errors import ConfigError
    from keyturn.wiring import config_roles

    path = tmp_path / "keyturn.toml"
    path.write_text(
        '[leases.roles.dev]\ncredential_type = "federation_token"\n'
        'policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]\n'
        'allowed_principals = ["arn:aws:iam::*:role/admin"]\n'
    )
    with pytest.raises(ConfigError, match="naming its 12-digit account") as raised:
        config_roles(load_settings(path=path))
    assert "\n" not in str(raised.value)
