"""Secure defaults: the lease database (it names every IAM user keyturn issued) is private
from its first byte, journal files included; the Vault token is masked (see also
test_leak_scan.test_the_vault_token_is_never_shown)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.domain.leases import Role


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
