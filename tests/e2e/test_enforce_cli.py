"""`keyturn enforce` as a user runs it: a subprocess against moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyturn.domain.enforcement import state_tag
from keyturn.sandbox.aws import LocalAws, SeededKey

KEYTURN = str(Path(sys.executable).with_name("keyturn"))
SENDER = "keys@example.com"


def keyturn(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYTURN, *args],
        env={**os.environ, "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def snapshot(aws: LocalAws, users: list[str]) -> dict[str, Any]:
    iam = aws.client("iam")
    return {
        "keys": {
            user: [
                (key["AccessKeyId"], key["Status"])
                for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            ]
            for user in users
        },
        "tags": {user: iam.list_user_tags(UserName=user)["Tags"] for user in users},
        "mails": len(aws.data()["ses"]["Message"]),
    }


@pytest.fixture
def account(aws: LocalAws) -> tuple[LocalAws, dict[str, SeededKey]]:
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    keys = {}
    for name, age in (("alice", 31), ("bob", 90), ("carol", 3)):
        aws.create_user(name, tags={"Contact": f"{name}@example.com"})
        keys[name] = aws.add_key(name, age_days=age)
    return aws, keys


USERS = ["alice", "bob", "carol"]


def test_dry_run_prints_the_plan_and_changes_nothing(
    account: tuple[LocalAws, dict[str, SeededKey]],
) -> None:
    aws, keys = account
    before = snapshot(aws, USERS)
    result = keyturn("enforce", SOURCEMAIL=SENDER)
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert keys["alice"].key_id in result.stdout
    assert keys["carol"].key_id not in result.stdout
    assert snapshot(aws, USERS) == before
    check = keyturn("enforce", "--check", SOURCEMAIL=SENDER)
    assert check.returncode == 3


def test_apply_then_again_sends_nothing_new(
    account: tuple[LocalAws, dict[str, SeededKey]], tmp_path: Path
) -> None:
    aws, keys = account
    events = tmp_path / "events.jsonl"
    first = keyturn("enforce", "--apply", "--events", str(events), SOURCEMAIL=SENDER)
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    sent = [e for e in lines if e["action"] == "notice" and e["outcome"] == "sent"]
    assert sorted(e["user"] for e in sent) == ["alice", "bob"]
    for key in keys.values():
        assert key.secret not in events.read_text()
        assert key.secret not in first.stdout + first.stderr
    tags = aws.client("iam").list_user_tags(UserName="alice")["Tags"]
    assert state_tag(keys["alice"].key_id) in {tag["Key"] for tag in tags}
    after = snapshot(aws, USERS)
    assert after["mails"] == 2
    second = keyturn("enforce", "--apply", "--json", SOURCEMAIL=SENDER)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["outcome"]["mails_sent"] == 0
    assert again["ignored_tags"] == []  # the run's own sealed state is believed
    assert snapshot(aws, USERS) == after


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        ((), {}, "SOURCEMAIL"),
        ((), {"SOURCEMAIL": "not-an-address"}, "source_email"),
        (("--grace", "0"), {"SOURCEMAIL": SENDER}, "grace_days"),
        (("--grace", "-3"), {"SOURCEMAIL": SENDER}, "grace_days"),
        (("--delete-after", "0"), {"SOURCEMAIL": SENDER}, "delete_after_days"),
        (("--remind-every", "9"), {"SOURCEMAIL": SENDER}, "remind_every_days"),
        ((), {"SOURCEMAIL": SENDER, "NOTIFYKEYAGE": "thirty"}, "NOTIFYKEYAGE"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_changed(
    account: tuple[LocalAws, dict[str, SeededKey]],
    args: tuple[str, ...],
    env: dict[str, str],
    fragment: str,
) -> None:
    aws, _ = account
    before = snapshot(aws, USERS)
    result = keyturn("enforce", "--apply", *args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr
    assert snapshot(aws, USERS) == before


def test_a_hand_written_state_tag_is_one_line_and_the_run_goes_on(
    account: tuple[LocalAws, dict[str, SeededKey]],
) -> None:
    """Not sealed by keyturn (as also a tag from a keyturn before sealed state): ignored."""
    aws, keys = account
    aws.client("iam").tag_user(
        UserName="bob", Tags=[{"Key": state_tag(keys["bob"].key_id), "Value": "soon"}]
    )
    result = keyturn("enforce", "--apply", SOURCEMAIL=SENDER)
    assert result.returncode == 0, result.stdout + result.stderr
    flagged = [line for line in result.stdout.splitlines() if line.startswith("ignored:")]
    assert len(flagged) == 1
    assert "user bob" in flagged[0]
    assert "carries no seal" in flagged[0]
    after = snapshot(aws, USERS)
    assert after["mails"] == 2  # alice and bob are both warned; nobody is deactivated
    assert all(status == "Active" for found in after["keys"].values() for _, status in found)


def without_sender() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "SOURCEMAIL"}


def test_a_plain_dry_run_needs_no_sender(account: tuple[LocalAws, dict[str, SeededKey]]) -> None:
    aws, keys = account
    before = snapshot(aws, USERS)
    result = subprocess.run(
        [KEYTURN, "enforce"],
        env=without_sender(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert keys["bob"].key_id in result.stdout
    assert "no sender is set" in result.stdout
    assert snapshot(aws, USERS) == before


def test_keys_without_a_contact_are_named_and_fail_the_check(aws: LocalAws) -> None:
    aws.create_user("ghost")
    ghost = aws.add_key("ghost", age_days=500)
    aws.create_user("fine", tags={"Contact": "fine@example.com"})
    aws.add_key("fine", age_days=3)
    shown = keyturn("enforce", SOURCEMAIL=SENDER)
    assert shown.returncode == 0, shown.stderr
    assert ghost.key_id in shown.stdout
    assert "no-contact" in shown.stdout
    assert "1 key(s) out of policy with nobody acting on them" in shown.stdout
    as_json = keyturn("enforce", "--json", SOURCEMAIL=SENDER)
    found = json.loads(as_json.stdout)
    assert found["schema"] == "keyturn.enforce/v1"
    assert found["steps"] == []
    assert found["unattended"] == 1
    [skip] = found["skips"]
    assert (skip["user"], skip["key_id"], skip["age_days"], skip["reason"]) == (
        "ghost",
        ghost.key_id,
        500,
        "no-contact",
    )
    assert "Contact" in skip["next"]
    # an empty plan is not a green light while a key is out of policy unattended
    assert keyturn("enforce", "--check", SOURCEMAIL=SENDER).returncode == 3
