"""Pagination proved with botocore's Stubber: moto answers in one page and would hide a
missing paginator (DESIGN.md, 'Real components, local')."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from keyturn.adapters.iam import IamDirectory
from keyturn.domain.errors import AccessDeniedError, NotFoundError


@pytest.fixture
def stubbed() -> Iterator[tuple[IamDirectory, Stubber]]:
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        yield IamDirectory(client), stub
        stub.assert_no_pending_responses()


def _meta(key_id: str, day: int) -> dict[str, object]:
    return {
        "UserName": "alice",
        "AccessKeyId": key_id,
        "Status": "Active",
        "CreateDate": datetime(2026, 1, day, tzinfo=UTC),
    }


def test_list_access_keys_reads_every_page(stubbed: tuple[IamDirectory, Stubber]) -> None:
    iam, stub = stubbed
    stub.add_response(
        "list_access_keys",
        {
            "AccessKeyMetadata": [_meta("AKIA0000000000000002", 2)],
            "IsTruncated": True,
            "Marker": "m1",
        },
        {"UserName": "alice"},
    )
    stub.add_response(
        "list_access_keys",
        {"AccessKeyMetadata": [_meta("AKIA0000000000000001", 1)], "IsTruncated": False},
        {"UserName": "alice", "Marker": "m1"},
    )
    keys = iam.list_access_keys("alice")
    assert [k.key_id for k in keys] == ["AKIA0000000000000001", "AKIA0000000000000002"]


def test_user_tags_reads_every_page(stubbed: tuple[IamDirectory, Stubber]) -> None:
    iam, stub = stubbed
    stub.add_response(
        "list_user_tags",
        {"Tags": [{"Key": "Contact", "Value": "a@x.io"}], "IsTruncated": True, "Marker": "t"},
        {"UserName": "alice"},
    )
    stub.add_response(
        "list_user_tags",
        {"Tags": [{"Key": "team", "Value": "sec"}], "IsTruncated": False},
        {"UserName": "alice", "Marker": "t"},
    )
    assert iam.user_tags("alice") == {"Contact": "a@x.io", "team": "sec"}


def test_group_members_reads_every_page(stubbed: tuple[IamDirectory, Stubber]) -> None:
    iam, stub = stubbed
    group = {
        "Path": "/",
        "GroupName": "breakglass",
        "GroupId": "AGPA000000000000000000",
        "Arn": "arn:aws:iam::111122223333:group/breakglass",
        "CreateDate": datetime(2026, 1, 1, tzinfo=UTC),
    }

    def user(name: str) -> dict[str, object]:
        return {
            "Path": "/",
            "UserName": name,
            "UserId": "AIDA000000000000000000",
            "Arn": f"arn:aws:iam::111122223333:user/{name}",
            "CreateDate": datetime(2026, 1, 1, tzinfo=UTC),
        }

    stub.add_response(
        "get_group",
        {"Group": group, "Users": [user("a")], "IsTruncated": True, "Marker": "g"},
        {"GroupName": "breakglass"},
    )
    stub.add_response(
        "get_group",
        {"Group": group, "Users": [user("b")], "IsTruncated": False},
        {"GroupName": "breakglass", "Marker": "g"},
    )
    assert iam.group_members("breakglass") == frozenset({"a", "b"})


def test_errors_are_translated_once(stubbed: tuple[IamDirectory, Stubber]) -> None:
    iam, stub = stubbed
    stub.add_client_error("get_user", "NoSuchEntity", "The user with name zed cannot be found.")
    stub.add_client_error("list_user_tags", "AccessDenied", "User is not authorized")
    with pytest.raises(NotFoundError, match="iam:GetUser \\(zed\\)"):
        iam.get_user("zed")
    with pytest.raises(AccessDeniedError, match="iam:ListUserTags"):
        iam.user_tags("alice")


def test_every_iam_method_declares_its_actions() -> None:
    from keyturn.permissions import actions_of

    methods = [
        IamDirectory.credential_report,
        IamDirectory.list_access_keys,
        IamDirectory.last_used,
        IamDirectory.get_user,
        IamDirectory.user_tags,
        IamDirectory.group_members,
    ]
    assert actions_of(methods) == [
        "iam:GenerateCredentialReport",
        "iam:GetAccessKeyLastUsed",
        "iam:GetCredentialReport",
        "iam:GetGroup",
        "iam:GetUser",
        "iam:ListAccessKeys",
        "iam:ListUserTags",
    ]
