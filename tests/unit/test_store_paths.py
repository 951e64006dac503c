"""Store paths rendered from templates are plain paths in the store's grammar (issue 12
item 8): no empty, `.` or `..` segment, nothing the store would reinterpret."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.errors import BadInputError, ConfigError
from keyturn.domain.store_paths import path_problem, render, require_user_placeholder

# IAM's grammar for user names: anything here may be created by whoever has iam:CreateUser.
IAM_NAMES = st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,64}", fullmatch=True)


def test_dot_dot_user_is_refused_naming_the_user() -> None:
    with pytest.raises(BadInputError) as caught:
        render("team-a/{user}/aws", account="", user="..", store="vault")
    message = str(caught.value)
    assert message.startswith("IAM user '..': store path 'team-a/../aws'")
    assert "segment '..'" in message
    assert "\n" not in message


@pytest.mark.parametrize("store", ["vault", "secretsmanager"])
@pytest.mark.parametrize("user", [".", "..", "a/../b", "a//b", "a/./b", "a/"])
def test_traversal_and_empty_segments_are_refused(store: str, user: str) -> None:
    with pytest.raises(BadInputError, match="refused"):
        render("team-a/{user}/aws", account="1", user=user, store=store)  # type: ignore[arg-type]


@pytest.mark.parametrize("char", ["?", "#", "%", "\\", "\x00", "\n", "\x7f"])
def test_characters_vault_would_reinterpret_are_refused(char: str) -> None:
    assert path_problem(f"aws/a{char}b", "vault") is not None
    with pytest.raises(BadInputError, match="reinterpret"):
        render("aws/{user}", account="", user=f"a{char}b", store="vault")


@pytest.mark.parametrize("name", ["a,b", "a b", "a:b", "a?b", "a*b", "x" * 513])
def test_secrets_manager_allows_only_its_name_characters(name: str) -> None:
    assert path_problem(name, "secretsmanager") is not None


def test_plain_paths_pass_unchanged() -> None:
    assert render("aws/{account}/{user}", account="123", user="a.b@c", store="vault") == (
        "aws/123/a.b@c"
    )
    # Vault paths lose outer slashes, as before; a secret name is used exactly as rendered
    assert render("/aws/{user}/", account="", user="u", store="vault") == "aws/u"
    with pytest.raises(BadInputError, match="empty segment"):
        render("/keyturn/{user}", account="", user="u", store="secretsmanager")


@given(IAM_NAMES)
def test_every_iam_name_renders_into_its_own_subtree_or_is_refused(user: str) -> None:
    """Whatever IAM allows, a rendered Vault path stays under team-a/ and names the user
    as one whole segment: never a sibling's or a parent's path."""
    try:
        path = render("team-a/{user}/aws", account="", user=user, store="vault")
    except BadInputError:
        assert user in (".", "..")
        return
    assert path == f"team-a/{user}/aws"
    assert path.split("/")[1] == user


def test_template_without_user_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"has no \{user\}"):
        require_user_placeholder("keyturn/shared", "one secret cannot bind one user")
    require_user_placeholder("keyturn/{account}/{user}", "unused")
