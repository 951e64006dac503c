"""Hostile review: enrollment records, store entries planted by a secret's writers, events.

Attackers: a tag-writer (iam:TagUser/UntagUser/ListUserTags), a writer of a user's secret
(secretsmanager:PutSecretValue), an invoker of the Rotate function.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from keyturn.config import load_settings
from keyturn.domain.enrollment import ENROLL_TAG
from keyturn.handlers.rotate import handler
from keyturn.wiring import build_enrollment
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"e{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")


def tags(authed: AuthedAws, user: str) -> dict[str, str]:
    found = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def service():  # type: ignore[no-untyped-def]
    return build_enrollment(load_settings().settings)


def secret_name(user: str) -> str:
    return os.environ["KEYTURN_ROTATE_PATH"].replace("{user}", user)


def plant(authed: AuthedAws, user: str, document: dict[str, str]) -> None:
    """A writer of `user`'s secret (PutSecretValue; here CreateSecret stands in for the
    secret existing already, e.g. made by keyturn for an earlier rotation)."""
    sm = authed.client("secretsmanager")
    try:
        sm.create_secret(Name=secret_name(user), SecretString=json.dumps(document))
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=secret_name(user), SecretString=json.dumps(document))


def test_review_replayed_enrollment_after_unenroll_enrolls_nobody(authed: AuthedAws) -> None:
    """Was the known hole: unenroll raises the enrollment generation, so the saved record
    is stale (keyturn.domain.enrollment)."""
    (old,) = authed.seed_user("alice")
    authed.enroll("alice", environ=os.environ)
    saved = tags(authed, "alice")[ENROLL_TAG]  # readable by anyone with ListUserTags
    assert service().unenroll("alice").ok
    assert ENROLL_TAG not in tags(authed, "alice")
    # The attack: put the saved, genuinely sealed record back.
    authed.client("iam").tag_user(UserName="alice", Tags=[{"Key": ENROLL_TAG, "Value": saved}])
    result = handler({"users": ["alice"]})
    assert result["results"] == []
    assert authed.keys("alice") == {old.key_id: "Active"}


def test_review_enroll_with_bobs_key_in_alices_secret_touches_only_alice(
    authed: AuthedAws,
) -> None:
    """A writer of alice's secret plants bob's working key there before `enroll alice`."""
    (alice_key,) = authed.seed_user("alice")
    (bob_key,) = authed.seed_user("bob")
    plant(
        authed,
        "alice",
        {"UserName": "alice", "AccessKeyId": bob_key.key_id, "SecretAccessKey": bob_key.secret},
    )
    outcome = service().enroll("alice")
    # bob is untouched whatever happened to alice
    assert authed.keys("bob") == {bob_key.key_id: "Active"}
    assert ENROLL_TAG not in tags(authed, "bob")
    assert "keyturn:rotation" not in tags(authed, "bob")
    # alice keeps her old key active (the hold) and the secret now serves a key of hers
    assert authed.keys("alice")[alice_key.key_id] == "Active"
    if outcome.ok:
        served = json.loads(
            authed.client("secretsmanager").get_secret_value(
                SecretId=secret_name("alice"), VersionStage="AWSCURRENT"
            )["SecretString"]
        )
        assert served["AccessKeyId"] in authed.keys("alice")
        assert served["AccessKeyId"] != bob_key.key_id


def test_review_enroll_does_not_adopt_alices_key_id_with_a_foreign_secret(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer knows alice's key id (ListAccessKeys) but not her secret: they plant the
    id with bob's secret. Adopting it would record an enrollment whose store serves no
    working key."""
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_TIMEOUT_SECONDS", "2")  # it never verifies
    (alice_key,) = authed.seed_user("alice")
    (bob_key,) = authed.seed_user("bob")
    plant(
        authed,
        "alice",
        {"UserName": "alice", "AccessKeyId": alice_key.key_id, "SecretAccessKey": bob_key.secret},
    )
    outcome = service().enroll("alice")
    assert not outcome.ok
    assert ENROLL_TAG not in tags(authed, "alice")
    assert authed.keys("alice") == {alice_key.key_id: "Active"}
    assert authed.keys("bob") == {bob_key.key_id: "Active"}


@pytest.mark.parametrize("name", ["ALICE", "Alice", "alice "])
def test_review_event_cannot_rotate_a_case_variant_of_an_unenrolled_user(
    authed: AuthedAws, name: str
) -> None:
    """IAM user names are case-insensitive; the enrollment lookup is by exact name."""
    (old,) = authed.seed_user("alice")
    authed.seed_user("bob")
    authed.enroll("bob", environ=os.environ)
    try:
        result = handler({"users": [name]})
    except Exception:  # refused is fine
        result = {"results": []}
    assert result["results"] == []
    assert authed.keys("alice") == {old.key_id: "Active"}


def test_review_event_naming_an_enrolled_users_case_variant_rotates_no_one_else(
    authed: AuthedAws,
) -> None:
    """alice is enrolled; the event names ALICE: the seal is over 'ALICE' vs 'alice'."""
    (_old,) = authed.seed_user("alice")
    authed.enroll("alice", environ=os.environ)
    try:
        result = handler({"users": ["ALICE"]})
    except Exception:
        result = {"results": []}
    # Either not rotated, or rotated as alice into alice's own secret; never into ALICE's.
    sm = authed.client("secretsmanager")
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert secret_name("ALICE") not in names, (result, names)
