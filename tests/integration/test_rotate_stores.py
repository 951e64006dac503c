"""Both stores, through the port: pending never shows as current (invariant 4), every
write twice ends as once (invariant 6)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from keyturn.adapters.secretsmanager import SecretsManagerStore
from keyturn.adapters.vault_kv import VaultKvStore
from keyturn.domain.model import NewKeySecret
from keyturn.sandbox.aws import LocalAws

OLD = NewKeySecret("AKIAOLDOLDOLDOLDOLD0", "old-secret")
NEW = NewKeySecret("AKIANEWNEWNEWNEWNEW0", "new-secret")


@pytest.fixture(params=["secretsmanager", "vault-kv2", "vault-kv1"])
def store(request: pytest.FixtureRequest, aws: LocalAws) -> Any:
    prefix = f"s{uuid.uuid4().hex[:8]}/{{user}}"
    if request.param == "secretsmanager":
        return SecretsManagerStore(aws.client("secretsmanager"), prefix)
    vault = request.getfixturevalue("vault")
    if request.param == "vault-kv1":
        if "kv1/" not in vault.sys.list_mounted_secrets_engines()["data"]:
            vault.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        return VaultKvStore(vault, prefix, mount="kv1", kv_version=1)
    return VaultKvStore(vault, prefix, kv_version=2)


def test_pending_is_not_current_until_promoted(store: Any) -> None:
    store.put_pending("u", OLD, "t" * 32)
    assert store.read_current("u") is None  # a first version is never current unverified
    store.promote("u", "t" * 32)
    assert store.read_current("u") == OLD
    store.put_pending("u", NEW, "n" * 32)
    assert store.read_current("u") == OLD
    assert store.read_pending("u", "n" * 32) == NEW
    store.promote("u", "n" * 32)
    assert store.read_current("u") == NEW
    assert store.key_id("u", "previous") == OLD.access_key_id


def test_every_write_twice_ends_as_once(store: Any) -> None:
    store.put_pending("u", OLD, "t" * 32)
    store.promote("u", "t" * 32)
    for _ in range(2):
        store.put_pending("u", NEW, "n" * 32)
    for _ in range(2):
        store.promote("u", "n" * 32)
    assert store.read_current("u") == NEW
    assert store.key_id("u", "previous") == OLD.access_key_id
    for _ in range(2):
        store.restore_previous("u", "n" * 32)
    assert store.read_current("u") == OLD
