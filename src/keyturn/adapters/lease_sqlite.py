"""The embedded lease store: one SQLite file under the user's state directory.

Created 0600 in a 0700 directory (it names every IAM user keyturn issued). WAL mode lets
readers run beside one writer; every state change is a single `UPDATE ... WHERE version = ?`,
so two processes revoking the same lease race on the database and exactly one wins.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from keyturn.adapters.private_files import secure_existing, state_path
from keyturn.domain.errors import ConfigError, OperationFailedError
from keyturn.domain.leases import Lease, Role

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
"""


def default_path(environ: dict[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/keyturn/leases.db, else ~/.local/state/keyturn/leases.db."""
    return state_path("leases.db", environ)


class SqliteLeaseStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        secure_existing(path)  # an older or copied database may be 0644 in a 0755 dir
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Create the file ourselves so it is 0600 from its first byte.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"lease store {path}: cannot open: {exc}") from None
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> _Result:
        """Execute and read the whole answer under the lock: a cursor read after the lock
        is released races other threads on the one shared connection (seen as sqlite's
        "no more rows available" when two revokers ran in one process)."""
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
                return _Result(cursor.fetchall(), cursor.rowcount)
            except sqlite3.Error as exc:
                raise OperationFailedError(f"lease store {self.path}: {exc}") from exc

    def store_id(self) -> str:
        self._run(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)",
            (secrets.token_hex(8),),
        )
        row = self._run("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        return str(row[0])

    # -- roles --------------------------------------------------------------------------

    def put_role(self, role: Role) -> None:
        self._run(
            "INSERT INTO roles (name, data) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
            (role.name, json.dumps(role.to_dict())),
        )

    def get_role(self, name: str) -> Role | None:
        row = self._run("SELECT data FROM roles WHERE name = ?", (name,)).fetchone()
        return Role.from_dict(json.loads(row[0])) if row else None

    def list_roles(self) -> list[Role]:
        rows = self._run("SELECT data FROM roles ORDER BY name").fetchall()
        return [Role.from_dict(json.loads(row[0])) for row in rows]

    def delete_role(self, name: str) -> bool:
        return self._run("DELETE FROM roles WHERE name = ?", (name,)).rowcount > 0

    # -- leases -------------------------------------------------------------------------

    def create(self, lease: Lease) -> Lease:
        stored = _versioned(lease, 1)
        try:
            self._run(
                "INSERT INTO leases (id, state, version, data) VALUES (?, ?, 1, ?)",
                (lease.lease_id, lease.state.value, json.dumps(stored.to_dict())),
            )
        except OperationFailedError as exc:
            raise OperationFailedError(f"lease {lease.lease_id} already exists") from exc
        return stored

    def get(self, lease_id: str) -> Lease | None:
        row = self._run("SELECT data FROM leases WHERE id = ?", (lease_id,)).fetchone()
        return Lease.from_dict(json.loads(row[0])) if row else None

    def list_leases(self, prefix: str = "") -> list[Lease]:
        # A range scan on the primary key; LIKE would need escaping of % and _.
        rows = self._run(
            "SELECT data FROM leases WHERE id >= ? AND id < ? ORDER BY id",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [Lease.from_dict(json.loads(row[0])) for row in rows]

    def replace(self, current: Lease, new: Lease) -> Lease | None:
        stored = _versioned(new, current.version + 1)
        cursor = self._run(
            "UPDATE leases SET state = ?, version = ?, data = ? WHERE id = ? AND version = ?",
            (
                stored.state.value,
                stored.version,
                json.dumps(stored.to_dict()),
                current.lease_id,
                current.version,
            ),
        )
        return stored if cursor.rowcount == 1 else None


@dataclasses.dataclass(frozen=True)
class _Result:
    rows: list[Any]
    rowcount: int

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def _versioned(lease: Lease, version: int) -> Lease:
    return dataclasses.replace(lease, version=version)
