"""Secure defaults: the lease database (it names every IAM user keyturn issued) is private
from its first byte, journal files included; the Vault token is masked (see also
test_leak_scan.test_the_vault_token_is_never_shown)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.domain.errors import KeyturnError
from keyturn.domain.leases import Role
from keyturn.sandbox.vault import LocalVault
from tests.conftest import started_vault
from tests.proof.conftest import KEYTURN
from tests.rotate_fixtures import AuthedAws, enroll_users


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_lease_db_and_its_wal_files_are_0600_in_a_0700_dir(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical, permissive umask
    try:
        path = tmp_path / "state" / "keyturn" / "leases.db"
        store = SqliteLeaseStore(path)
        store.put_role(Role.build("dev", credential_type="iam_user", iam_groups=["g"]))
        files = [p for p in path.parent.iterdir() if p.name.startswith("leases.db")]
        assert {p.name for p in files} >= {"leases.db", "leases.db-wal", "leases.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(path.parent) == 0o700
        store.close()
    finally:
        os.umask(old)


# -- TLS to Vault: verified by default, VAULT_CACERT to trust a private CA ------------------


@pytest.fixture(scope="module")
def tls_vault() -> Iterator[LocalVault]:
    """OpenBao with `-dev-tls`: HTTPS under a CA generated for this run (its own server)."""
    yield from started_vault(tls=True)


@pytest.fixture
def tls_rotate(
    authed: AuthedAws, tls_vault: LocalVault, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`keyturn rotate USER` into the TLS Vault; `extra` adds env variables."""
    prefix = f"tls{uuid.uuid4().hex[:8]}"

    def run(user: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **tls_vault.env(),
            "KEYTURN_ROTATE_STORE": "vault",
            "KEYTURN_ROTATE_PATH": f"{prefix}/{{user}}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
            **extra,
        }
        # An operator enrolled it before, with Vault's CA (whatever this run is given).
        operator = {k: v for k, v in env.items() if k not in extra}
        enroll_users(user, environ={**operator, "VAULT_CACERT": str(tls_vault.cacert)})
        return subprocess.run(
            [KEYTURN, "rotate", user],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.mark.vault
def test_vault_tls_is_verified_by_default_and_refused_without_its_ca(
    authed: AuthedAws, tls_rotate: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    (old,) = authed.seed_user("tina")
    done = tls_rotate("tina")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error:"), done.stderr
    assert "TLS" in errors[0], errors[0]
    assert "VAULT_CACERT" in errors[0], errors[0]
    assert authed.keys("tina") == {old.key_id: "Active"}  # nothing changed


@pytest.mark.vault
def test_vault_tls_with_vault_cacert_rotates(
    authed: AuthedAws,
    tls_vault: LocalVault,
    tls_rotate: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    assert tls_vault.cacert is not None
    (old,) = authed.seed_user("uma")
    done = tls_rotate("uma", VAULT_CACERT=tls_vault.cacert)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    keys = authed.keys("uma")
    assert keys[old.key_id] == "Inactive"
    assert len(keys) == 2


@pytest.mark.vault
@pytest.mark.parametrize("skip", ["VAULT_SKIP_VERIFY", "KEYTURN_VAULT_SKIP_VERIFY"])
def test_skipping_vault_tls_verification_is_explicit_and_warns_once(
    skip: str, authed: AuthedAws, tls_rotate: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    (old,) = authed.seed_user("vic")
    done = tls_rotate("vic", **{skip: "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, done.stderr
    assert "TLS verification" in warnings[0], warnings
    assert "OFF" in warnings[0], warnings
    assert "InsecureRequestWarning" not in done.stderr  # urllib3's per-request noise is ours
    assert authed.keys("vic")[old.key_id] == "Inactive"


# -- a lease database left readable by others is re-tightened when opened -------------------


def loosen(path: Path) -> None:
    """What an older version, a backup restore or `cp` without -p may leave behind."""
    for item in path.parent.iterdir():
        item.chmod(0o644)
    path.parent.chmod(0o755)


def test_a_loose_lease_db_is_retightened_on_open_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "keyturn" / "leases.db"
    first = SqliteLeaseStore(path)
    first.put_role(Role.build("dev", credential_type="iam_user", iam_groups=["g"]))
    first.close()
    loosen(path)
    with caplog.at_level("WARNING", logger="keyturn.files"):
        again = SqliteLeaseStore(path)
    files = [p for p in path.parent.iterdir() if p.name.startswith("leases.db")]
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert mode(path.parent) == 0o700
    assert again.get_role("dev") is not None  # tightened, not replaced: nothing lost
    again.close()
    warned = [r.getMessage() for r in caplog.records if r.name == "keyturn.files"]
    assert any(str(path) in w and "0644" in w for w in warned), warned
    assert any(str(path.parent) in w and "0755" in w for w in warned), warned


def test_a_directory_that_is_not_keyturns_own_is_left_alone(tmp_path: Path) -> None:
    """A configured path such as /srv/leases.db: the file is tightened, /srv is not."""
    path = tmp_path / "srv" / "leases.db"
    SqliteLeaseStore(path).close()
    loosen(path)
    SqliteLeaseStore(path).close()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o755


# -- the Vault token and the new secret stay out of DEBUG logs, errors and the report -------


@pytest.mark.vault
def test_vault_rotation_at_debug_never_shows_the_token_or_a_secret(
    authed: AuthedAws,
    vault: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """test_leak_scan covers `config show`; this covers a real Vault rotation with every
    logger at DEBUG (urllib3 and hvac included), a 403 failure, and the CLI's report."""
    from keyturn.config import load_settings
    from keyturn.wiring import build_aws, build_rotation

    token = vault.auth.token.create(policies=["root"], ttl="10m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", token)
    prefix = f"dbg{uuid.uuid4().hex[:8]}"
    flags: dict[str, Any] = {
        "rotate.store": "vault",
        "rotate.path": f"{prefix}/{{user}}",
        "rotate.verify_interval_seconds": 0,
    }
    (old,) = authed.seed_user("walt")
    authed.seed_user("xena")
    caplog.set_level(logging.DEBUG)
    settings = load_settings(flags=flags).settings
    service = build_rotation(settings, build_aws(settings))
    done = service.rotate("walt")
    assert done.ok, done.message
    vault.auth.token.revoke(token)  # the next call answers 403
    with pytest.raises(KeyturnError) as denied:
        service.rotate("xena")
    assert "permission denied" in str(denied.value)
    stored = vault.secrets.kv.v2.read_secret_version(
        path=f"{prefix}/walt", raise_on_deleted_version=True
    )["data"]["data"]
    secrets = {token, stored["secret_key"], old.secret}
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG really on
    out, err = capfd.readouterr()
    texts = {
        "logs": logged,
        "captured output": out + err,
        "error": f"{denied.value!s} {denied.value!r}",
        "outcome": repr(done),
    }
    assert {name: [s[:6] for s in secrets if s in text] for name, text in texts.items()} == {
        name: [] for name in texts
    }

    # The CLI, --debug, into Vault: the report names key ids, never a secret or the token.
    fresh = vault.auth.token.create(policies=["root"], ttl="10m")["auth"]["client_token"]
    env = {
        **os.environ,
        "VAULT_TOKEN": fresh,
        "KEYTURN_ROTATE_STORE": "vault",
        "KEYTURN_ROTATE_PATH": f"{prefix}/{{user}}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        "COLUMNS": "200",
    }
    enroll_users("xena", environ=env)
    cli = subprocess.run(
        [KEYTURN, "--debug", "rotate", "xena"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    current = vault.secrets.kv.v2.read_secret_version(
        path=f"{prefix}/xena", raise_on_deleted_version=True
    )["data"]["data"]
    assert current["access_key"] in cli.stdout  # the report names the new key id
    for secret in (fresh, current["secret_key"]):
        assert secret not in cli.stdout + cli.stderr
