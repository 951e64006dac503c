"""`keyturn rotate` as a user runs it: flags, output, exit codes, secrets only on request."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws

keyturn = run_cli


@pytest.fixture
def env(authed: AuthedAws) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(authed.env())
    merged.update(
        {
            "KEYTURN_ROTATE_STORE": "secretsmanager",
            "KEYTURN_ROTATE_PATH": f"e{uuid.uuid4().hex[:8]}/{{user}}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        }
    )
    return merged


def test_rotate_prints_a_summary_without_secrets(authed: AuthedAws, env: dict[str, str]) -> None:
    (old,) = authed.seed_user("alice")
    result = keyturn(env, "rotate", "alice")
    assert result.returncode == 0, result.stderr
    new = next(k for k in authed.keys("alice") if k != old.key_id)
    assert new in result.stdout
    assert "1 rotated, 0 failed" in result.stdout
    secret = authed.client("secretsmanager").get_secret_value(
        SecretId=env["KEYTURN_ROTATE_PATH"].format(user="alice"), VersionStage="AWSCURRENT"
    )["SecretString"]
    assert json.loads(secret)["SecretAccessKey"] not in result.stdout + result.stderr


def test_show_secret_is_the_only_way_to_print_it(authed: AuthedAws, env: dict[str, str]) -> None:
    authed.seed_user("bob")
    result = keyturn(env, "rotate", "bob", "--show-secret")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["user"] == "bob"
    assert authed.authenticates(line["access_key_id"], line["secret_access_key"])


def test_dry_run_changes_nothing(authed: AuthedAws, env: dict[str, str]) -> None:
    _, b = authed.seed_user("carol", keys=2, inactive=1)
    before = authed.keys("carol")
    result = keyturn(env, "rotate", "carol", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert b.key_id in result.stdout  # would retire the inactive key first
    assert authed.keys("carol") == before


def test_one_failed_user_makes_the_exit_status_non_zero(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    authed.seed_user("dave")
    authed.seed_user("erin", keys=2)  # two active keys: refused
    result = keyturn(env, "rotate", "dave", "erin", "ghost")
    assert result.returncode == 1
    assert "1 rotated, 2 failed" in result.stdout
    assert len(authed.keys("erin")) == 2
    assert all(s == "Active" for s in authed.keys("erin").values())


def test_tag_selects_users(authed: AuthedAws, env: dict[str, str]) -> None:
    authed.seed_user("tagged", tags={"rotate": "yes"})
    (other,) = authed.seed_user("untagged")
    result = keyturn(env, "rotate", "--tag", "rotate=yes")
    assert result.returncode == 0, result.stderr
    assert "tagged" in result.stdout
    assert authed.keys("untagged") == {other.key_id: "Active"}


def test_due_rotates_only_users_the_policy_flags(authed: AuthedAws, env: dict[str, str]) -> None:
    (old_one,) = authed.seed_user("old-key", age_days=45)
    (young,) = authed.seed_user("young-key", age_days=3)
    result = keyturn(env, "rotate", "--due")
    assert result.returncode == 0, result.stdout + result.stderr
    assert authed.keys("old-key")[old_one.key_id] == "Inactive"
    assert authed.keys("young-key") == {young.key_id: "Active"}


def test_rollback_restores_the_previous_key(authed: AuthedAws, env: dict[str, str]) -> None:
    (first,) = authed.seed_user("frank")
    assert keyturn(env, "rotate", "frank").returncode == 0
    second = keyturn(env, "rotate", "frank")
    assert second.returncode == 0, second.stderr
    keys = authed.keys("frank")
    previous = next(k for k, s in keys.items() if s == "Inactive")
    result = keyturn(env, "rotate", "--rollback", "frank")
    assert result.returncode == 0, result.stderr
    current = json.loads(
        authed.client("secretsmanager").get_secret_value(
            SecretId=env["KEYTURN_ROTATE_PATH"].format(user="frank"), VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    assert current["AccessKeyId"] == previous
    assert authed.keys("frank")[previous] == "Active"
    assert first.key_id not in authed.keys("frank")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rotate",), "name the users"),
        (("rotate", "--tag", "novalue"), "expected KEY=VALUE"),
        (("rotate", "alice", "--rollback", "alice"), "use one of"),
        (("rotate", "alice", "--workers", "0"), "rotate.workers"),
        (("rotate", "alice", "--path", "x/{name}"), "unknown placeholder"),
        (("rotate", "alice", "--store", "s3"), "rotate.store"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    authed: AuthedAws, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    (key,) = authed.seed_user("alice")
    result = keyturn(env, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert authed.keys("alice") == {key.key_id: "Active"}


def test_unknown_user_is_a_clear_error(authed: AuthedAws, env: dict[str, str]) -> None:
    """The same exit status and words as `audit --user nobody`; no table of raw errors."""
    result = keyturn(env, "rotate", "nobody")
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["error: no such IAM user: nobody"]


def test_rollback_of_a_first_rotation_is_one_line_and_changes_nothing(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    """The secret was created by keyturn's first rotation: its previous version is a
    key-less placeholder, so there is nothing to restore (invariant 7)."""
    (old,) = authed.seed_user("gwen")
    assert keyturn(env, "rotate", "gwen").returncode == 0
    before = authed.keys("gwen")
    result = keyturn(env, "rotate", "--rollback", "gwen")
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot roll back gwen: old key {old.key_id} was never in" in result.stderr
    assert "nothing changed" in result.stderr
    assert "keyturn rotate gwen" in result.stderr
    assert "Traceback" not in result.stderr
    assert authed.keys("gwen") == before
    assert before[old.key_id] == "Inactive"
