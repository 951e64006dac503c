"""The scheduled rotation Lambda: rotate named/due users, later delete old keys past grace."""

from __future__ import annotations

import os
import uuid

import pytest

from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.handlers.rotate import handler
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"l{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def test_rotates_then_a_later_run_deletes_the_old_key_after_grace(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    (old,) = authed.seed_user("alice")
    first = handler({"users": ["alice"]})
    (done,) = first["results"]
    assert done["old_key_id"] == old.key_id
    assert authed.keys("alice") == {old.key_id: "Inactive", done["new_key_id"]: "Active"}
    assert "secret" not in str(first).lower().replace("secretsmanager", "")

    monkeypatch.setenv("KEYTURN_ROTATE_GRACE_DAYS", "0")  # the grace period has passed
    later = handler({"due": False})
    assert [r["state"] for r in later["results"]] == ["old_deleted"]
    assert authed.keys("alice") == {done["new_key_id"]: "Active"}


def test_due_users_from_the_policy(authed: AuthedAws) -> None:
    (stale,) = authed.seed_user("stale", age_days=60)
    (fresh,) = authed.seed_user("fresh", age_days=1)
    result = handler({})
    assert [r["user"] for r in result["results"]] == ["stale"]
    assert authed.keys("stale")[stale.key_id] == "Inactive"
    assert authed.keys("fresh") == {fresh.key_id: "Active"}


def test_a_failed_user_fails_the_invocation(authed: AuthedAws) -> None:
    authed.seed_user("two", keys=2)
    with pytest.raises(OperationFailedError, match="two"):
        handler({"users": ["two"]})


@pytest.mark.parametrize("bad", [[], {"users": "alice"}, {"users": [1]}, {"due": "yes"}])
def test_bad_events(bad: object) -> None:
    with pytest.raises(BadInputError):
        handler(bad)
