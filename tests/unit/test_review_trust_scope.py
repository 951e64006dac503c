"""Hostile review: who can make a seal, and what a seal binds.

Static and adapter-level checks (no server): the KMS key policy the template renders, and
whether a record sealed for one account's user is believed for another account's user of
the same name (the CLI's `--accounts`/`--org` fan-out seals with one key for all accounts).
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.iam_rotation import IamTagJournal
from keyturn.adapters.mac_local import LocalAuthenticator
from keyturn.deploy.render import journal_key
from keyturn.domain.enrollment import Enrollment, payload, sealed_text
from keyturn.domain.rotation import RotationRecord, RotationState, encode
from keyturn.domain.trust import JOURNAL_PURPOSE, message

ACCOUNT = "111122223333"


def _sub(value: Any, stack: str, account: str) -> str:
    text = value["Fn::Sub"]
    return (
        text.replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", account)
        .replace("${AWS::StackName}", stack)
    )


def _sealer_patterns(stack: str, account: str) -> list[str]:
    policy = journal_key()["Properties"]["KeyPolicy"]
    (seal,) = [s for s in policy["Statement"] if s.get("Sid") == "SealAndVerify"]
    found = []
    for item in seal["Condition"]["ArnEquals"]["aws:PrincipalArn"]:
        if isinstance(item, dict) and "Fn::Sub" in item:
            found.append(_sub(item, stack, account))
    return found


def test_review_a_role_an_insider_can_create_cannot_seal() -> None:
    stack, account = "keyturn", "111122223333"
    squatted = f"arn:aws:iam::{account}:role/{stack}-RotateRole-mallory"
    assert not any(fnmatch.fnmatchcase(squatted, p) for p in _sealer_patterns(stack, account))


def test_review_iam_admins_cannot_rewrite_who_may_seal() -> None:
    """Only the PolicyAdministration statement grants PutKeyPolicy, and with KeyAdminArn
    set it is limited to that principal (empty: documented in docs/security.md)."""
    policy = journal_key()["Properties"]["KeyPolicy"]
    (admin,) = [s for s in policy["Statement"] if s.get("Sid") == "Administration"]
    granted = admin["Action"]
    assert not any(fnmatch.fnmatchcase("kms:PutKeyPolicy", a) for a in granted)
    (choice,) = [
        s["Fn::If"]
        for s in policy["Statement"]
        if "Fn::If" in s and s["Fn::If"][0] == "HasKeyAdmin"
    ]
    condition, restricted, _ = choice
    assert condition == "HasKeyAdmin"
    assert restricted["Action"] == ["kms:PutKeyPolicy"]
    assert restricted["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Ref": "KeyAdminArn"}}}


class _NoIam:
    def get_paginator(self, name: str) -> Any:  # pragma: no cover - check() needs no IAM
        raise AssertionError("no IAM call expected")


def test_review_journal_seal_binds_the_user(tmp_path: Path) -> None:
    """Control: a journal entry sealed for alice is no entry of bob's."""
    auth = LocalAuthenticator(tmp_path / "k" / "journal.key")
    record = RotationRecord("alice", "t", RotationState.INTENT, datetime.now(UTC), "AKIAOLD")
    text = encode(record)
    value = f"{text}:{auth.seal(message(JOURNAL_PURPOSE, 'alice', ACCOUNT, text))}"
    journal = IamTagJournal(_NoIam(), auth, ACCOUNT)  # type: ignore[arg-type]
    assert isinstance(journal.open("alice", value), RotationRecord)
    assert not isinstance(journal.open("bob", value), RotationRecord)


def test_review_enrollment_from_another_account_enrolls_nobody(tmp_path: Path) -> None:
    auth = LocalAuthenticator(tmp_path / "k" / "journal.key")  # one CLI, many accounts
    template = "svc/{user}"  # Secrets Manager is per account: a natural template

    def location(account: str):  # type: ignore[no-untyped-def]
        return lambda user: template.format(account=account, user=user)

    in_a = IamTagEnrollments(
        _NoIam(), auth, "secretsmanager", location("111111111111"), account="111111111111"
    )  # type: ignore[arg-type]
    in_b = IamTagEnrollments(
        _NoIam(), auth, "secretsmanager", location("222222222222"), account="222222222222"
    )  # type: ignore[arg-type]
    made = Enrollment("deploy", "secretsmanager", in_a.location("deploy"), datetime.now(UTC))
    value = f"{payload(made)}:{auth.seal(sealed_text(made, '111111111111'))}"
    assert isinstance(in_a.check("deploy", value), Enrollment)  # control
    assert not isinstance(in_b.check("deploy", value), Enrollment)
