"""Hostile review: replaying keyturn's OWN, genuinely sealed, older journal entries.

The attacker holds iam:TagUser (and ListUserTags / ListAccessKeys) on the user. They copy
the `keyturn:rotation` tag value as keyturn wrote it during an earlier rotation and write it
back later, at a moment where believing it harms. The seal verifies (keyturn made it), so
only facts can stop the damage.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.iam_rotation import JOURNAL_TAG
from keyturn.domain.errors import KeyturnError
from keyturn.handlers.rotate import handler
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"r{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def tag(authed: AuthedAws, user: str) -> str:
    tags = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return next(t["Value"] for t in tags if t["Key"] == JOURNAL_TAG)


def write_tag(authed: AuthedAws, user: str, value: str) -> None:
    authed.client("iam").tag_user(UserName=user, Tags=[{"Key": JOURNAL_TAG, "Value": value}])


def shifted(monkeypatch: pytest.MonkeyPatch, days: float) -> None:
    real = datetime.now

    def now(self: Any) -> datetime:
        return real(UTC) - timedelta(days=days)

    monkeypatch.setattr(SystemClock, "now", now)


def only_new(before: dict[str, str], after: dict[str, str]) -> str:
    (new,) = set(after) - set(before)
    return new


@pytest.mark.parametrize(
    "park_previous",
    [
        False,
        True,  # was a HOLE (orphan deletion of the overlap key): now refused, nothing deleted
    ],
)
def test_review_replayed_old_intent_cannot_delete_the_key_in_overlap(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch, park_previous: bool
) -> None:
    (_k0,) = authed.seed_user("alice", age_days=120)
    # Rotation 1, thirty days ago (clock shifted; the new key's CreateDate moved to match).
    with monkeypatch.context() as m:
        shifted(m, 30)
        before = authed.keys("alice")
        handler({"users": ["alice"]})
        k1 = only_new(before, authed.keys("alice"))
        authed.server.backdate(k1, 30)
        old_intent = tag(authed, "alice")  # genuinely sealed: what the attacker keeps
    # Whatever rotation 1 last sealed: its intent, or (journal v5) the promoted record that
    # marks, before the old key's deactivation, that this rotation retires it.
    assert old_intent.split(":")[1] in ("intent", "promoted")
    # Rotation 2, now, with an overlap: k1 stays active while consumers move to k2.
    monkeypatch.setenv("KEYTURN_ROTATE_OVERLAP_MINUTES", "1440")
    before = authed.keys("alice")
    second = handler({"users": ["alice"]})
    k2 = only_new(before, authed.keys("alice"))
    assert second["results"][-1]["state"] == "promoted"
    assert authed.keys("alice") == {k1: "Active", k2: "Active"}
    # The attack: put rotation 1's sealed intent back; the schedule resumes. With
    # PutSecretValue on the secret, park AWSPREVIOUS on a junk version (consumers read
    # AWSCURRENT, so nobody notices), which hides "rotation 1 was promoted" from restored().
    write_tag(authed, "alice", old_intent)
    if park_previous:
        name = os.environ["KEYTURN_ROTATE_PATH"].replace("{user}", "alice")
        authed.client("secretsmanager").put_secret_value(
            SecretId=name, SecretString="{}", VersionStages=["AWSPREVIOUS"]
        )
    with contextlib.suppress(KeyturnError):  # a failed run is fine; a deleted key is not
        handler({"due": False})
    assert authed.keys("alice").get(k1) == "Active", authed.keys("alice")
    assert authed.keys("alice").get(k2) == "Active"
