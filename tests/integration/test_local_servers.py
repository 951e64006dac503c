"""The harness itself: both local servers answer, on loopback only, and reset cleanly."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from keyturn.sandbox.aws import LocalAws


def test_moto_listens_on_loopback_and_resets(aws: LocalAws) -> None:
    assert urlparse(aws.url).hostname == "127.0.0.1"
    aws.create_user("temp")
    aws.reset()
    assert aws.client("iam").list_users()["Users"] == []


def test_backdated_key_has_its_age(aws: LocalAws) -> None:
    from datetime import UTC, datetime

    aws.create_user("old")
    key = aws.add_key("old", age_days=40)
    (meta,) = aws.client("iam").list_access_keys(UserName="old")["AccessKeyMetadata"]
    assert meta["AccessKeyId"] == key.key_id
    age = datetime.now(UTC) - meta["CreateDate"].astimezone(UTC)
    assert 39.9 < age.total_seconds() / 86400 < 40.1
    assert key.secret not in repr(key)


def test_openbao_dev_server_kv_v2_round_trip(vault: Any, local_vault: Any) -> None:
    assert urlparse(local_vault.addr).hostname == "127.0.0.1"
    vault.secrets.kv.v2.create_or_update_secret(path="harness", secret={"k": "v"})
    read = vault.secrets.kv.v2.read_secret_version(path="harness", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}
