"""Rotation into OpenBao (Vault's API) KV v1 and v2, token and AppRole auth."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from keyturn.adapters.vault_kv import VaultKvStore
from keyturn.config import load_settings
from keyturn.domain.errors import (
    AccessDeniedError,
    BadInputError,
    EndpointUnreachableError,
    OperationFailedError,
)
from keyturn.domain.model import NewKeySecret
from keyturn.services.rotate import RotationService
from keyturn.wiring import build_aws, build_rotation, build_vault
from tests.rotate_fixtures import AuthedAws

pytestmark = pytest.mark.vault


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kv1(vault: Any) -> str:
    mounts = vault.sys.list_mounted_secrets_engines()["data"]
    if "kv1/" not in mounts:
        vault.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    return "kv1"


def service(path: str, **flags: Any) -> RotationService:
    merged = {"rotate.store": "vault", "rotate.path": path, "rotate.verify_interval_seconds": 0}
    merged.update(flags)
    settings = load_settings(flags=merged).settings
    return build_rotation(settings, build_aws(settings))


def read(vault: Any, mount: str, path: str, version: int) -> dict[str, Any]:
    if version == 2:
        found = vault.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )
        return dict(found["data"]["data"])
    return dict(vault.secrets.kv.v1.read_secret(path=path, mount_point=mount)["data"])


@pytest.mark.parametrize("version", [1, 2])
def test_rotation_into_kv(
    authed: AuthedAws, vault: Any, kv1: str, prefix: str, version: int
) -> None:
    mount = "secret" if version == 2 else kv1
    (old,) = authed.seed_user("alice")
    outcome = service(f"{prefix}/{{user}}", **{"vault.kv_mount": mount}).rotate("alice")
    assert outcome.ok, outcome.message
    current = read(vault, mount, f"{prefix}/alice", version)
    assert current["access_key"] == outcome.new_key_id
    assert authed.authenticates(current["access_key"], current["secret_key"])
    assert authed.keys("alice") == {old.key_id: "Inactive", outcome.new_key_id: "Active"}
    again = service(f"{prefix}/{{user}}", **{"vault.kv_mount": mount}).rotate("alice")
    previous = read(vault, mount, f"{prefix}/alice.previous", version)
    assert previous["access_key"] == outcome.new_key_id
    assert read(vault, mount, f"{prefix}/alice", version)["access_key"] == again.new_key_id
    assert authed.keys("alice") == {outcome.new_key_id: "Inactive", again.new_key_id: "Active"}


def test_account_placeholder_uses_the_caller_account(
    authed: AuthedAws, vault: Any, prefix: str
) -> None:
    authed.seed_user("dora")
    outcome = service(f"{prefix}/{{account}}/{{user}}").rotate("dora")
    assert read(vault, "secret", f"{prefix}/123456789012/dora", 2)["access_key"] == (
        outcome.new_key_id
    )


def test_approle_login_with_a_policy_limited_to_the_prefix(
    authed: AuthedAws, vault: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "approle/" not in vault.sys.list_auth_methods()["data"]:
        vault.sys.enable_auth_method("approle")
    policy = f'path "secret/data/{prefix}/*" {{ capabilities = ["create","read","update"] }}\n'
    policy += f'path "secret/metadata/{prefix}/*" {{ capabilities = ["read","delete"] }}\n'
    vault.sys.create_or_update_policy(name=prefix, policy=policy)
    vault.auth.approle.create_or_update_approle(role_name=prefix, token_policies=[prefix])
    role_id = vault.auth.approle.read_role_id(role_name=prefix)["data"]["role_id"]
    secret_id = vault.auth.approle.generate_secret_id(role_name=prefix)["data"]["secret_id"]
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("KEYTURN_VAULT_AUTH_METHOD", "approle")
    monkeypatch.setenv("KEYTURN_VAULT_APPROLE_ROLE_ID", role_id)
    monkeypatch.setenv("KEYTURN_VAULT_APPROLE_SECRET_ID", secret_id)
    authed.seed_user("erin")
    outcome = service(f"{prefix}/{{user}}", **{"vault.kv_version": 2}).rotate("erin")
    assert outcome.ok
    assert read(vault, "secret", f"{prefix}/erin", 2)["access_key"] == outcome.new_key_id


def test_token_without_permission_fails_before_any_key_is_created(
    authed: AuthedAws, vault: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = vault.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", weak)
    (old,) = authed.seed_user("fred")
    with pytest.raises(AccessDeniedError, match="permission denied"):
        service(f"{prefix}/{{user}}", **{"vault.kv_version": 2}).rotate("fred")
    assert authed.keys("fred") == {old.key_id: "Active"}


def test_failed_store_write_deletes_the_new_key_and_keeps_the_old(
    authed: AuthedAws, vault: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault rule and invariant 2: a read-only token reads fine, then the write fails."""
    policy = f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}'
    vault.sys.create_or_update_policy(name=f"{prefix}-ro", policy=policy)
    weak = vault.auth.token.create(policies=[f"{prefix}-ro"], ttl="10m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", weak)
    (old,) = authed.seed_user("fred")
    with pytest.raises(OperationFailedError) as caught:
        service(f"{prefix}/{{user}}", **{"vault.kv_version": 2}).rotate("fred")
    text = str(caught.value)
    assert "permission denied" in text
    assert f"old key {old.key_id} still active" in text
    assert authed.keys("fred") == {old.key_id: "Active"}


def test_unreachable_vault_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        flags={"vault.addr": "http://127.0.0.1:9", "vault.token": "x"}
    ).settings
    client = build_vault(settings)
    store = VaultKvStore(client, "x/{user}", kv_version=2)
    with pytest.raises(EndpointUnreachableError, match="cannot reach Vault"):
        store.describe("alice")


def test_vault_errors_never_echo_the_response_body(vault: Any, prefix: str) -> None:
    """hvac keeps the response text on its errors; ours must not carry it (invariant 5)."""
    store = VaultKvStore(vault, f"{prefix}/{{user}}", kv_version=2)
    secret = NewKeySecret("AKIAEXAMPLEEXAMPLE00", "very-secret-value-do-not-print")
    store.put_pending("gina", secret, "tok-1")
    store.promote("gina", "tok-1")
    vault.secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/gina", secret={"access_key": "AKIAOTHER", "secret_key": "s"}
    )
    # a CAS conflict: the error names path and cause, nothing from the body
    store.put_pending("gina", NewKeySecret("AKIAEXAMPLEEXAMPLE01", "another-secret-value"), "tok-2")
    original = store._read

    def stale(user: str, stage: str) -> tuple[dict[str, Any] | None, int]:
        data, version = original(user, stage)
        return data, (version - 1 if stage == "current" else version)

    store._read = stale  # type: ignore[method-assign]
    with pytest.raises(OperationFailedError) as caught:
        store.promote("gina", "tok-2")
    assert "check-and-set" in str(caught.value)
    assert "secret" not in str(caught.value).replace("secret/", "")


def test_denied_read_is_access_error(vault: Any, prefix: str) -> None:
    import hvac

    weak = vault.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    client = hvac.Client(url=vault.url, token=weak)
    store = VaultKvStore(client, f"{prefix}/{{user}}", kv_version=2)
    with pytest.raises(AccessDeniedError, match="permission denied"):
        store.describe("hana")


def test_sealed_vault_stops_the_rotation_and_keeps_the_old_key(
    authed: AuthedAws, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Vault sealed mid-life: a clear error, the old key still Active, no key left behind."""
    from keyturn.sandbox.vault import LocalVault

    (old,) = authed.seed_user("sealy")
    with LocalVault() as own:  # its own server: sealing the shared one would end the session
        for name, value in own.env().items():
            monkeypatch.setenv(name, value)
        own.client().sys.seal()
        with pytest.raises(EndpointUnreachableError, match="sealed"):
            service(f"{prefix}/{{user}}").rotate("sealy")
    assert authed.keys("sealy") == {old.key_id: "Active"}


@pytest.mark.parametrize("version", [1, 2])
def test_user_named_dot_dot_is_refused_before_any_write(
    authed: AuthedAws, vault: Any, kv1: str, prefix: str, version: int
) -> None:
    """Issue 12 item 8: `..` is a valid IAM user name; rendered into team-a/{user}/aws it
    would be team-a/../aws, which the HTTP client collapses to another team's `aws` path.
    Refused with one error naming the user, before the journal, IAM or Vault is written."""
    mount = "secret" if version == 2 else kv1
    theirs = {"access_key": "AKIATHEIRSTHEIRS0000", "secret_key": "theirs"}
    if version == 2:
        vault.secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/aws", secret=theirs, mount_point=mount
        )
    else:
        vault.secrets.kv.v1.create_or_update_secret(
            path=f"{prefix}/aws", secret=theirs, mount_point=mount
        )
    (old,) = authed.seed_user("..")
    rotation = service(f"{prefix}/team-a/{{user}}/aws", **{"vault.kv_mount": mount})
    with pytest.raises(BadInputError) as caught:
        rotation.rotate("..")
    message = str(caught.value)
    assert "\n" not in message
    assert "IAM user '..'" in message
    assert "segment '..'" in message
    assert read(vault, mount, f"{prefix}/aws", version) == theirs
    listed = vault.secrets.kv.v2.list_secrets if version == 2 else vault.secrets.kv.v1.list_secrets
    assert listed(path=prefix, mount_point=mount)["data"]["keys"] == ["aws"]
    assert authed.keys("..") == {old.key_id: "Active"}
    assert authed.client("iam").list_user_tags(UserName="..")["Tags"] == []
