"""Issue 12, items 2-3: a tag-writer forges keyturn's rotation journal; nothing is harmed.

The attacker holds only `iam:TagUser` (and reads key ids and CreateDates with
ListAccessKeys). Each case writes the `keyturn:rotation` tag as the attack describes, then
runs the scheduled Rotate Lambda's resume (`{"due": false}`) as the schedule would. After
every case: each key that was active is still active, the store still serves the key it
served, and the forged entry is reported in one line.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.iam_rotation import JOURNAL_TAG
from keyturn.adapters.mac_local import LocalAuthenticator
from keyturn.domain.rotation import RotationRecord, RotationState, encode
from keyturn.domain.trust import JOURNAL_PURPOSE, message
from keyturn.handlers.rotate import handler
from keyturn.sandbox.aws import ACCOUNT
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"f{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def forge(authed: AuthedAws, user: str, value: str) -> None:
    authed.client("iam").tag_user(UserName=user, Tags=[{"Key": JOURNAL_TAG, "Value": value}])


def journal(authed: AuthedAws, user: str) -> str:
    tags = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return next(tag["Value"] for tag in tags if tag["Key"] == JOURNAL_TAG)


def created_epoch(authed: AuthedAws, user: str, key_id: str) -> int:
    found = authed.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return int(next(m for m in found if m["AccessKeyId"] == key_id)["CreateDate"].timestamp())


def resume_run() -> dict[str, Any]:
    return handler({"due": False})


def untrusted_lines(result: dict[str, Any]) -> list[str]:
    return [item["message"] for item in result["untrusted"]]


def test_forged_v1_intent_cannot_delete_the_only_key(authed: AuthedAws) -> None:
    (victim,) = authed.seed_user("victim")
    epoch = created_epoch(authed, "victim", victim.key_id)
    forge(authed, "victim", f"v1:intent:tok:{epoch}:{victim.key_id}:-:-")
    result = resume_run()
    assert authed.keys("victim") == {victim.key_id: "Active"}
    (line,) = untrusted_lines(result)
    assert line.startswith("victim: ignored keyturn state")


@pytest.mark.parametrize("seal", ["AAAA", "", "not base64 !", "x" * 43])
def test_forged_v2_intent_with_any_seal_cannot_delete_the_only_key(
    authed: AuthedAws, seal: str
) -> None:
    (victim,) = authed.seed_user("victim")
    epoch = created_epoch(authed, "victim", victim.key_id)
    # A key made within the orphan window after a claimed intent that excluded it.
    forge(authed, "victim", f"v2:intent:tok:{epoch - 60}:-:-:-:-:{seal}".rstrip(":"))
    result = resume_run()
    assert authed.keys("victim") == {victim.key_id: "Active"}
    assert len(untrusted_lines(result)) == 1


def test_intent_sealed_with_another_key_is_a_claim(authed: AuthedAws, tmp_path: Path) -> None:
    """An attacker with their own keyturn (their own local key) seals a forged intent."""
    (victim,) = authed.seed_user("victim")
    from datetime import UTC, datetime

    epoch = created_epoch(authed, "victim", victim.key_id)
    record = RotationRecord(
        user="victim",
        token="t",
        state=RotationState.INTENT,
        intent_at=datetime.fromtimestamp(epoch - 60, tz=UTC),
        old_key_id=None,
    )
    payload = encode(record)
    theirs = LocalAuthenticator(tmp_path / "attacker" / "journal.key")
    forge(
        authed,
        "victim",
        f"{payload}:{theirs.seal(message(JOURNAL_PURPOSE, 'victim', ACCOUNT, payload))}",
    )
    result = resume_run()
    assert authed.keys("victim") == {victim.key_id: "Active"}
    assert "forged or foreign" in untrusted_lines(result)[0]


def test_forged_promoted_cannot_deactivate_the_key_the_store_serves(authed: AuthedAws) -> None:
    authed.seed_user("alice")
    first = handler({"users": ["alice"]})
    (done,) = first["results"]
    current = done["new_key_id"]
    sealed = journal(authed, "alice")
    token = sealed.split(":")[2]
    epoch = sealed.split(":")[3]
    # Rewrite: "promoted, old key = the current key", keeping the real token.
    forge(authed, "alice", f"v2:promoted:{token}:{epoch}:{current}:-:{current}:-:{'A' * 43}")
    result = resume_run()
    assert authed.keys("alice")[current] == "Active"
    assert "alice" in untrusted_lines(result)[0]


def test_a_sealed_entry_copied_to_another_user_is_rejected(authed: AuthedAws) -> None:
    """Seals bind the user: bob's real entry, copied onto carol, is no entry of carol's."""
    authed.seed_user("bob")
    (carol_key,) = authed.seed_user("carol")
    handler({"users": ["bob"]})
    forge(authed, "carol", journal(authed, "bob"))
    result = resume_run()
    assert authed.keys("carol") == {carol_key.key_id: "Active"}
    assert [line.split(":")[0] for line in untrusted_lines(result)] == ["carol"]


def test_a_genuine_entry_still_resumes(authed: AuthedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: keyturn's own sealed entry is believed (grace over -> old key deleted)."""
    (old,) = authed.seed_user("alice")
    (done,) = handler({"users": ["alice"]})["results"]
    monkeypatch.setenv("KEYTURN_ROTATE_GRACE_DAYS", "0")
    result = resume_run()
    assert result["untrusted"] == []
    assert authed.keys("alice") == {done["new_key_id"]: "Active"}
    assert old.key_id not in authed.keys("alice")
