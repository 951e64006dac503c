"""AWS's compromised-key quarantine policy as a rollback fact (hostile review H4).

AWS attaches `AWSCompromisedKeyQuarantineV2`/`V3` to a user whose key it found exposed.
moto does not load AWS managed policies (attaching one is NoSuchEntity there), so IAM's
ListAttachedUserPolicies is stubbed: two pages, and a customer policy of the same name
(someone's claim, not AWS's fact).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from keyturn.adapters.iam_quarantine import aws_quarantine_policies

AWS = "arn:aws:iam::aws:policy/"


def attached(*arns: str, more: bool = False) -> dict[str, Any]:
    page: dict[str, Any] = {
        "AttachedPolicies": [{"PolicyName": a.rpartition("/")[2], "PolicyArn": a} for a in arns],
        "IsTruncated": more,
    }
    if more:
        page["Marker"] = "next"
    return page


@pytest.fixture
def iam() -> Any:
    return boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_only_aws_own_quarantine_policies_count_across_pages(iam: Any) -> None:
    with Stubber(iam) as stub:
        stub.add_response(
            "list_attached_user_policies",
            attached(f"{AWS}ReadOnlyAccess", "arn:aws:iam::123456789012:policy/"
                     "AWSCompromisedKeyQuarantineV3", more=True),
            {"UserName": "alice"},
        )  # fmt: skip
        stub.add_response(
            "list_attached_user_policies",
            attached(f"{AWS}AWSCompromisedKeyQuarantineV2"),
            {"UserName": "alice", "Marker": "next"},
        )
        assert aws_quarantine_policies(iam, "alice") == ["AWSCompromisedKeyQuarantineV2"]


def test_the_rollback_check_names_the_policy_before_reading_any_tag(iam: Any) -> None:
    from keyturn.config import load_settings
    from keyturn.wiring import quarantine_checker

    class Aws:
        def iam(self) -> Any:
            return iam

    with Stubber(iam) as stub:
        stub.add_response(
            "list_attached_user_policies",
            attached(f"{AWS}AWSCompromisedKeyQuarantineV3"),
            {"UserName": "alice"},
        )
        why = quarantine_checker(load_settings().settings, Aws())("alice", "AKIAEXPOSED")  # type: ignore[arg-type]
        stub.assert_no_pending_responses()
    assert why is not None
    assert "AWSCompromisedKeyQuarantineV3" in why
