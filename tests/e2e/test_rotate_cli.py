"""`keyturn rotate` as a user runs it: flags, output, exit codes, secrets only on request."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws, secretsmanager_cli_env

keyturn = run_cli


@pytest.fixture
def env(authed: AuthedAws) -> dict[str, str]:
    merged = secretsmanager_cli_env(authed)
    authed.enroll_with = merged
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


# -- operator experience (issue 13 items 7, 8, 11) ------------------------------------------


def test_resume_with_nothing_half_done_says_so(authed: AuthedAws, env: dict[str, str]) -> None:
    authed.seed_user("hana")
    authed.seed_user("ivan")
    assert keyturn(env, "rotate", "hana", "ivan").returncode == 0
    result = keyturn(env, "rotate", "--resume")
    assert result.returncode == 0, result.stderr
    assert "nothing to resume" in result.stdout
    assert "rotated" not in result.stdout
    shown = json.loads(keyturn(env, "rotate", "--resume", "--format", "json").stdout)
    assert shown["schema"] == "keyturn.rotate/v1"
    assert {user["result"] for user in shown["users"]} == {"unchanged"}


def test_rollback_has_its_own_words(authed: AuthedAws, env: dict[str, str]) -> None:
    authed.seed_user("jo")
    assert keyturn(env, "rotate", "jo").returncode == 0
    assert keyturn(env, "rotate", "jo").returncode == 0
    result = keyturn(env, "rotate", "--rollback", "jo")
    assert result.returncode == 0, result.stderr
    assert "1 rolled back, 0 failed" in result.stdout
    assert "rotated" not in result.stdout


def test_json_output_is_one_versioned_document(authed: AuthedAws, env: dict[str, str]) -> None:
    (old,) = authed.seed_user("kim")
    result = keyturn(env, "rotate", "kim", "ghost", "--format", "json")
    assert result.returncode == 1, result.stderr
    shown = json.loads(result.stdout)
    assert shown["schema"] == "keyturn.rotate/v1"
    assert shown["mode"] == "rotate"
    by_user = {user["user"]: user for user in shown["users"]}
    assert by_user["kim"]["result"] == "rotated"
    assert by_user["kim"]["old_key_id"] == old.key_id
    assert "secret_access_key" not in json.dumps(shown)
    assert by_user["ghost"]["result"] == "failed"
    assert by_user["ghost"]["exit_code"] == 4
    plan = json.loads(keyturn(env, "rotate", "kim", "--dry-run", "--format", "json").stdout)
    assert plan["schema"] == "keyturn.rotate/v1"
    assert plan["dry_run"] is True
    assert plan["plan"][0]["user"] == "kim"


def test_piped_tables_never_cut_a_user_name(authed: AuthedAws, env: dict[str, str]) -> None:
    name = "a-very-long-service-account-name-that-a-terminal-would-cut-" + "x" * 5
    authed.seed_user(name)
    result = keyturn(env, "rotate", name)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout
    assert "…" not in result.stdout


def test_ctrl_c_during_a_rotation_exits_130_with_the_resume_hint(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    authed.seed_user("lee")
    result = keyturn({**env, "KEYTURN_TEST_INTERRUPT_AFTER": "store"}, "rotate", "lee")
    assert result.returncode == 130, result.stdout + result.stderr
    assert "keyturn rotate --resume lee" in result.stderr
    assert "Traceback" not in result.stderr
