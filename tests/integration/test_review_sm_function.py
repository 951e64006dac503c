"""Hostile review: the Secrets Manager rotation function invoked directly.

Attacker: holds only lambda:InvokeFunction on keyturn's Secrets Manager rotation function
(and reads version ids: DescribeSecret, or the token in the plaintext part of the
`keyturn:rotation` tag). The event is a claim: "it only says which secret to look at".
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from keyturn.domain.errors import KeyturnError
from keyturn.handlers.rotate import handler as rotate_handler
from keyturn.handlers.secretsmanager_rotation import handler as sm_handler
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"s{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def name(user: str) -> str:
    return os.environ["KEYTURN_ROTATE_PATH"].replace("{user}", user)


def current(authed: AuthedAws, user: str) -> dict[str, Any]:
    found = authed.client("secretsmanager").get_secret_value(
        SecretId=name(user), VersionStage="AWSCURRENT"
    )
    doc: dict[str, Any] = json.loads(found["SecretString"])
    return doc


def version_with(authed: AuthedAws, user: str, stage: str) -> str:
    found = authed.client("secretsmanager").describe_secret(SecretId=name(user))
    return next(v for v, labels in found["VersionIdsToStages"].items() if stage in labels)


def test_review_invoked_finish_cannot_serve_the_retired_previous_key(authed: AuthedAws) -> None:
    authed.seed_user("alice", age_days=120)
    rotate_handler({"users": ["alice"]})  # rotation 1 (overlap 0: old key deactivated)
    rotate_handler({"users": ["alice"]})  # rotation 2
    serving = current(authed, "alice")["AccessKeyId"]
    previous = version_with(authed, "alice", "AWSPREVIOUS")
    assert authed.keys("alice")[serving] == "Active"
    with pytest.raises(KeyturnError, match="no keyturn rotation with token"):
        sm_handler(
            {"SecretId": name("alice"), "ClientRequestToken": previous, "Step": "finishSecret"}
        )
    now = current(authed, "alice")
    assert now["AccessKeyId"] == serving, (now["AccessKeyId"], authed.keys("alice"))


def test_review_invoked_create_for_an_unenrolled_secretless_user_creates_nothing(
    authed: AuthedAws,
) -> None:
    """An invoker names a secret that does not exist: no user is bound, nothing created."""
    (old,) = authed.seed_user("bob", enroll=False)
    with pytest.raises(KeyturnError):  # any refusal
        sm_handler(
            {
                "SecretId": name("bob"),
                "ClientRequestToken": str(uuid.uuid4()),
                "Step": "createSecret",
            }
        )
    assert authed.keys("bob") == {old.key_id: "Active"}


def test_review_following_keyturns_hint_after_the_invoked_finish_keeps_the_new_key(
    authed: AuthedAws,
) -> None:
    from keyturn.config import load_settings
    from keyturn.wiring import build_rotation

    authed.seed_user("alice", age_days=120)
    rotate_handler({"users": ["alice"]})
    rotate_handler({"users": ["alice"]})
    serving = current(authed, "alice")["AccessKeyId"]
    previous = version_with(authed, "alice", "AWSPREVIOUS")
    with contextlib.suppress(Exception):
        sm_handler(
            {"SecretId": name("alice"), "ClientRequestToken": previous, "Step": "finishSecret"}
        )
    hint = ""
    try:
        rotate_handler({"due": False})
    except Exception as exc:
        hint = str(exc)
    if "--rollback" in hint:
        build_rotation(load_settings().settings).rollback("alice")
    assert authed.keys("alice").get(serving) == "Active", (hint, authed.keys("alice"))
