"""IamLeaseAdmin against botocore's Stubber: what moto cannot show.

moto answers every IAM list call in one page and its DeleteUser never reports
DeleteConflict for service-specific credentials, so pagination and the conflict path are
proven here, call by call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import Stubber

from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.domain.leases import TAG_LEASE, TAG_STORE

USER = "keyturn-a-dev-1-abcdefgh"
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def iam_client() -> Any:
    return boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )


def empty_sweep_after_keys(stub: Stubber) -> None:
    u = {"UserName": USER}
    stub.add_response("list_attached_user_policies", {"AttachedPolicies": []}, u)
    stub.add_response("list_user_policies", {"PolicyNames": []}, u)
    stub.add_response("list_groups_for_user", {"Groups": []}, u)
    stub.add_client_error("delete_login_profile", "NoSuchEntity", expected_params=u)
    stub.add_response("list_mfa_devices", {"MFADevices": []}, u)
    stub.add_response("list_ssh_public_keys", {"SSHPublicKeys": []}, u)
    stub.add_response("list_signing_certificates", {"Certificates": []}, u)


def key(key_id: str) -> dict[str, Any]:
    return {"UserName": USER, "AccessKeyId": key_id, "Status": "Active", "CreateDate": CREATED}


def test_sweep_reads_every_page_and_retries_delete_after_conflict() -> None:
    client = iam_client()
    stub = Stubber(client)
    u = {"UserName": USER}
    # keys come in two pages: a sweep that read only the first would leave one behind
    stub.add_response(
        "list_access_keys",
        {"AccessKeyMetadata": [key("AKIA0000000000000001")], "IsTruncated": True, "Marker": "m1"},
        u,
    )
    stub.add_response(
        "list_access_keys",
        {"AccessKeyMetadata": [key("AKIA0000000000000002")]},
        {"UserName": USER, "Marker": "m1"},
    )
    stub.add_response(
        "delete_access_key", {}, {"UserName": USER, "AccessKeyId": "AKIA0000000000000001"}
    )
    stub.add_response(
        "delete_access_key", {}, {"UserName": USER, "AccessKeyId": "AKIA0000000000000002"}
    )
    empty_sweep_after_keys(stub)
    stub.add_client_error("delete_user", "DeleteConflict", http_status_code=409, expected_params=u)
    stub.add_response(
        "list_service_specific_credentials",
        {
            "ServiceSpecificCredentials": [
                {
                    "UserName": USER,
                    "Status": "Active",
                    "ServiceUserName": "x",
                    "CreateDate": CREATED,
                    "ServiceSpecificCredentialId": "ACCA1234567890123456",
                    "ServiceName": "codecommit.amazonaws.com",
                }
            ]
        },
        u,
    )
    stub.add_response(
        "delete_service_specific_credential",
        {},
        {"UserName": USER, "ServiceSpecificCredentialId": "ACCA1234567890123456"},
    )
    stub.add_response("list_access_keys", {"AccessKeyMetadata": []}, u)
    empty_sweep_after_keys(stub)
    stub.add_response("delete_user", {}, u)
    with stub:
        assert IamLeaseAdmin(client).delete_user_everything(USER) is True
    stub.assert_no_pending_responses()


def test_user_that_does_not_exist_is_already_revoked() -> None:
    client = iam_client()
    stub = Stubber(client)
    stub.add_client_error("list_access_keys", "NoSuchEntity", http_status_code=404)
    with stub:
        assert IamLeaseAdmin(client).delete_user_everything(USER) is False


def test_managed_users_pages_list_users_and_filters_by_prefix_then_tag() -> None:
    client = iam_client()
    stub = Stubber(client)

    def user(name: str) -> dict[str, Any]:
        return {
            "UserName": name,
            "UserId": "AIDA" + "X" * 16,
            "Path": "/",
            "Arn": f"arn:aws:iam::123456789012:user/{name}",
            "CreateDate": CREATED,
        }

    stub.add_response(
        "list_users",
        {"Users": [user("alice"), user("keyturn-1")], "IsTruncated": True, "Marker": "m"},
        {"PathPrefix": "/"},
    )
    stub.add_response(
        "list_users",
        {"Users": [user("keyturn-2"), user("keyturn-3")]},
        {"PathPrefix": "/", "Marker": "m"},
    )
    # alice is never asked about: not keyturn's name prefix
    stub.add_response(
        "list_user_tags",
        {"Tags": [{"Key": TAG_LEASE, "Value": "aws/creds/a/b"}, {"Key": TAG_STORE, "Value": "s1"}]},
        {"UserName": "keyturn-1"},
    )
    stub.add_response(
        "list_user_tags", {"Tags": [{"Key": "team", "Value": "x"}]}, {"UserName": "keyturn-2"}
    )
    stub.add_client_error(
        "list_user_tags",
        "NoSuchEntity",
        http_status_code=404,
        expected_params={"UserName": "keyturn-3"},
    )
    with stub:
        found = list(IamLeaseAdmin(client).managed_users(["/"], "keyturn"))
    assert [(u.name, u.lease_id, u.store) for u in found] == [("keyturn-1", "aws/creds/a/b", "s1")]


def test_create_user_sends_path_boundary_and_tags_in_one_call() -> None:
    client = iam_client()
    stub = Stubber(client)
    boundary = "arn:aws:iam::123456789012:policy/boundary"
    stub.add_response(
        "create_user",
        {},
        {
            "UserName": USER,
            "Path": "/keyturn/",
            "PermissionsBoundary": boundary,
            "Tags": [{"Key": TAG_LEASE, "Value": "aws/creds/dev/abcdefghij"}],
        },
    )
    with stub:
        IamLeaseAdmin(client).create_user(
            USER, "/keyturn/", boundary, {TAG_LEASE: "aws/creds/dev/abcdefghij"}
        )
    stub.assert_no_pending_responses()


def created(key_id: str, retries: int) -> dict[str, Any]:
    return {
        "AccessKey": {**key(key_id), "SecretAccessKey": "s" * 40},
        "ResponseMetadata": {"RetryAttempts": retries},
    }


def test_create_access_key_after_a_retry_deletes_the_keys_whose_answers_were_lost() -> None:
    client = iam_client()
    stub = Stubber(client)
    u = {"UserName": USER}
    stub.add_response("create_access_key", created("AKIA0000000000000003", 2), u)
    stub.add_response(
        "list_access_keys",
        {"AccessKeyMetadata": [key("AKIA0000000000000001")], "IsTruncated": True, "Marker": "m1"},
        u,
    )
    stub.add_response(
        "list_access_keys",
        {"AccessKeyMetadata": [key("AKIA0000000000000003"), key("AKIA0000000000000002")]},
        {"UserName": USER, "Marker": "m1"},
    )
    for lost in ("AKIA0000000000000001", "AKIA0000000000000002"):
        stub.add_response("delete_access_key", {}, {"UserName": USER, "AccessKeyId": lost})
    with stub:
        made = IamLeaseAdmin(client).create_access_key(USER)
        stub.assert_no_pending_responses()
    assert made.access_key_id == "AKIA0000000000000003"


def test_create_access_key_answered_first_time_makes_no_other_call() -> None:
    client = iam_client()
    stub = Stubber(client)
    stub.add_response("create_access_key", created("AKIA0000000000000001", 0), {"UserName": USER})
    with stub:  # any further call would find no stubbed answer and fail
        made = IamLeaseAdmin(client).create_access_key(USER)
    assert made.access_key_id == "AKIA0000000000000001"
