"""`keyturn enroll` / `unenroll` and rotate's enrollment rules, as an operator runs them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyturn.domain.enrollment import ENROLL_TAG
from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws, secretsmanager_cli_env

keyturn = run_cli


@pytest.fixture
def env(authed: AuthedAws) -> dict[str, str]:
    merged = secretsmanager_cli_env(authed)
    return merged


def secret_of(authed: AuthedAws, env: dict[str, str], user: str) -> dict[str, Any] | None:
    name = env["KEYTURN_ROTATE_PATH"].format(user=user)
    client = authed.client("secretsmanager")
    try:
        found = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    except client.exceptions.ResourceNotFoundException:
        return None
    document: dict[str, Any] = json.loads(found["SecretString"])
    return document


def tags(authed: AuthedAws, user: str) -> dict[str, str]:
    found = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def test_enroll_is_the_first_rotation_and_keeps_the_old_key(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    (old,) = authed.seed_user("alice")
    result = keyturn(env, "enroll", "alice")
    assert result.returncode == 0, result.stdout + result.stderr
    where = env["KEYTURN_ROTATE_PATH"].format(user="alice")
    assert where in result.stdout
    assert "point consumers" in result.stdout
    stored = secret_of(authed, env, "alice")
    assert stored is not None
    new = stored["AccessKeyId"]
    assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}
    assert authed.authenticates(new, stored["SecretAccessKey"])
    assert stored["SecretAccessKey"] not in result.stdout + result.stderr
    assert ENROLL_TAG in tags(authed, "alice")

    again = keyturn(env, "enroll", "alice", "--json")
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["schema"] == "keyturn.enroll/v1"
    assert shown["results"][0]["action"] == "already enrolled"
    assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}


def test_enroll_dry_run_changes_nothing(authed: AuthedAws, env: dict[str, str]) -> None:
    (old,) = authed.seed_user("alice")
    result = keyturn(env, "enroll", "alice", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would rotate" in result.stdout
    assert "dry run" in result.stdout
    assert authed.keys("alice") == {old.key_id: "Active"}
    assert secret_of(authed, env, "alice") is None
    assert ENROLL_TAG not in tags(authed, "alice")


def test_enroll_records_a_store_that_already_serves_a_working_key(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    """A user keyturn rotated before enrollment existed: only the record is written."""
    (old,) = authed.seed_user("alice")
    authed.client("secretsmanager").create_secret(
        Name=env["KEYTURN_ROTATE_PATH"].format(user="alice"),
        SecretString=json.dumps(
            {"UserName": "alice", "AccessKeyId": old.key_id, "SecretAccessKey": old.secret}
        ),
    )
    result = keyturn(env, "enroll", "alice")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already serves" in result.stdout
    assert authed.keys("alice") == {old.key_id: "Active"}
    assert ENROLL_TAG in tags(authed, "alice")


def test_a_store_entry_whose_secret_does_not_work_is_not_adopted(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    """Whoever can write the secret cannot make keyturn adopt a key it cannot verify."""
    (old,) = authed.seed_user("alice")
    authed.client("secretsmanager").create_secret(
        Name=env["KEYTURN_ROTATE_PATH"].format(user="alice"),
        SecretString=json.dumps(
            {"UserName": "alice", "AccessKeyId": old.key_id, "SecretAccessKey": "wrong" * 8}
        ),
    )
    env = {**env, "KEYTURN_ROTATE_VERIFY_TIMEOUT_SECONDS": "2"}
    result = keyturn(env, "enroll", "alice")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    assert authed.keys("alice") == {old.key_id: "Active"}
    assert ENROLL_TAG not in tags(authed, "alice")


def test_unenroll_stops_rotation_and_leaves_keys_and_store(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    authed.seed_user("alice")
    assert keyturn(env, "enroll", "alice").returncode == 0
    keys = authed.keys("alice")
    stored = secret_of(authed, env, "alice")
    result = keyturn(env, "unenroll", "alice")
    assert result.returncode == 0, result.stderr
    assert ENROLL_TAG not in tags(authed, "alice")
    assert authed.keys("alice") == keys
    assert secret_of(authed, env, "alice") == stored
    refused = keyturn(env, "rotate", "alice")
    assert refused.returncode == 1
    assert "not enrolled" in refused.stdout + refused.stderr


def test_rotate_asks_to_enroll_a_named_user(authed: AuthedAws, env: dict[str, str]) -> None:
    (old,) = authed.seed_user("bob")
    refused = keyturn(env, "rotate", "bob")
    assert refused.returncode == 1
    assert "keyturn enroll bob" in refused.stdout + refused.stderr
    assert authed.keys("bob") == {old.key_id: "Active"}
    assert secret_of(authed, env, "bob") is None

    enrolled = keyturn(env, "rotate", "bob", "--enroll")
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    stored = secret_of(authed, env, "bob")
    assert stored is not None
    assert authed.keys("bob") == {old.key_id: "Active", stored["AccessKeyId"]: "Active"}
    assert ENROLL_TAG in tags(authed, "bob")


def test_rotate_due_lists_due_users_that_are_not_enrolled(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    (stale,) = authed.seed_user("stale", age_days=60)
    (forged,) = authed.seed_user("forged", age_days=60, tags={ENROLL_TAG: "v1:secretsmanager:1"})
    result = keyturn(env, "rotate", "--due")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "due, not enrolled" in result.stderr
    assert "forged, stale" in result.stderr
    assert "forged: ignored keyturn state" in result.stderr
    assert authed.keys("stale") == {stale.key_id: "Active"}
    assert authed.keys("forged") == {forged.key_id: "Active"}


def test_audit_names_due_users_that_are_not_enrolled(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    authed.seed_user("stale", age_days=60)
    authed.seed_user("kept", age_days=60)
    authed.seed_user("fresh", age_days=1)
    authed.enroll("kept", environ=env)
    result = keyturn(env, "audit", "--enrollment", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["keys"]  # the report itself is unchanged
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("rotation:"))
    assert "enrolled (rotated on schedule): kept;" in line
    assert "due, not enrolled (never rotated until `keyturn enroll`): stale" in line
    assert "fresh" not in line
