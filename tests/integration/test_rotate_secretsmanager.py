"""Rotation into Secrets Manager against moto with authentication on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyturn.config import load_settings
from keyturn.domain.errors import OperationFailedError
from keyturn.services.rotate import RotationService
from keyturn.wiring import build_aws, build_rotation
from tests.rotate_fixtures import AuthedAws


def service(**rotate: Any) -> RotationService:
    flags = {
        "rotate.store": "secretsmanager",
        "rotate.path": "iam/{account}/{user}",
        "rotate.verify_interval_seconds": 0,
        **{f"rotate.{k}": v for k, v in rotate.items()},
    }
    settings = load_settings(flags=flags).settings
    return build_rotation(settings, build_aws(settings))


def current_doc(authed: AuthedAws, user: str) -> dict[str, Any]:
    found = authed.client("secretsmanager").get_secret_value(
        SecretId=f"iam/123456789012/{user}", VersionStage="AWSCURRENT"
    )
    doc: dict[str, Any] = json.loads(found["SecretString"])
    return doc


def test_rotation_stores_verifies_promotes_then_deactivates_old(authed: AuthedAws) -> None:
    (old,) = authed.seed_user("alice")
    outcome = service().rotate("alice")
    assert outcome.ok, outcome.message
    assert outcome.state == "old_deactivated"
    doc = current_doc(authed, "alice")
    assert doc["UserName"] == "alice"
    assert doc["AccessKeyId"] == outcome.new_key_id != old.key_id
    assert authed.authenticates(doc["AccessKeyId"], doc["SecretAccessKey"])
    assert authed.keys("alice") == {old.key_id: "Inactive", outcome.new_key_id: "Active"}


def test_second_rotation_retires_the_inactive_old_key(authed: AuthedAws) -> None:
    (old,) = authed.seed_user("bob")
    first = service().rotate("bob")
    second = service().rotate("bob")
    assert second.ok, second.message
    keys = authed.keys("bob")
    assert old.key_id not in keys
    assert keys == {first.new_key_id: "Inactive", second.new_key_id: "Active"}
    assert current_doc(authed, "bob")["AccessKeyId"] == second.new_key_id


def test_two_active_keys_stop_with_an_error_naming_them(authed: AuthedAws) -> None:
    a, b = authed.seed_user("carol", keys=2)
    with pytest.raises(OperationFailedError) as caught:
        service().rotate("carol")
    assert a.key_id in str(caught.value)
    assert b.key_id in str(caught.value)
    assert authed.keys("carol") == {a.key_id: "Active", b.key_id: "Active"}


def labels(client: Any, name: str) -> dict[str, list[str]]:
    found = client.describe_secret(SecretId=name)["VersionIdsToStages"]
    return {version: sorted(stages) for version, stages in found.items()}


def test_rotation_leaves_no_awspending_label(authed: AuthedAws) -> None:
    """Issue 13 item 10: after promotion AWSPENDING is on no version (AWS's own rotation
    templates remove it; Secrets Manager does not)."""
    authed.seed_user("dave")
    for _ in range(2):
        assert service().rotate("dave").ok
    found = labels(authed.client("secretsmanager"), "iam/123456789012/dave")
    assert not any("AWSPENDING" in stages for stages in found.values()), found
    assert sorted(stage for stages in found.values() for stage in stages) == [
        "AWSCURRENT",
        "AWSPREVIOUS",
    ]


def test_promote_is_idempotent_with_fresh_and_stale_label_caches(aws: Any) -> None:
    from keyturn.adapters.secretsmanager import SecretsManagerStore
    from keyturn.domain.model import NewKeySecret

    client = aws.client("secretsmanager")
    first, second = "a" * 32, "b" * 32
    store = SecretsManagerStore(client, "idem/{user}")
    store.put_pending("u", NewKeySecret("AKIAOLDOLDOLDOLDOLD0", "old"), first)
    store.promote("u", first)
    store.put_pending("u", NewKeySecret("AKIANEWNEWNEWNEWNEW0", "new"), second)
    # another process (a retried finishSecret) completes the promotion first: `store`'s
    # cached labels are now stale
    SecretsManagerStore(client, "idem/{user}").promote("u", second)
    store.promote("u", second)
    store.promote("u", second)
    found = labels(client, "idem/u")
    assert found[second] == ["AWSCURRENT"]
    assert found[first] == ["AWSPREVIOUS"]
    assert store.read_current("u") == NewKeySecret("AKIANEWNEWNEWNEWNEW0", "new")
