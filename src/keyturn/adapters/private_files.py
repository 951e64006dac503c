"""Files that name credentials stay private: 0600 files in a 0700 directory.

keyturn creates its lease database that way, but a database from an older version, a
restore from backup or a careless `cp` can arrive 0644 in a 0755 directory. Opening it
re-tightens the modes and warns, rather than refusing: refusing would block `lease revoke`
and `lease tidy`, the very commands that clean credentials up, at the worst moment, while
tightening closes the exposure at once; the warning tells the operator the file was
readable before, so they can judge who may have read it. A file owned by another user is
refused instead (keyturn cannot tighten it, and someone else controls it).

A directory is tightened only when it is keyturn's own (named `keyturn`, as keyturn lays
it out): a configured path such as `/srv/leases.db` must never make keyturn chmod `/srv`.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from keyturn.domain.errors import ConfigError

log = logging.getLogger("keyturn.files")

# SQLite's companions: WAL mode's log and shared memory, the rollback journal.
COMPANIONS = ("", "-wal", "-shm", "-journal")
LOOSE = stat.S_IRWXG | stat.S_IRWXO


def state_path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """A file in keyturn's own state directory: $XDG_STATE_HOME/keyturn/NAME, else
    ~/.local/state/keyturn/NAME (the lease database, the local journal key)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "keyturn" / name


def secure_existing(path: Path, *, owned_dir_name: str = "keyturn") -> list[str]:
    """Re-tighten `path` (and its SQLite companions, and its keyturn directory) if they
    exist with group or other permissions; return what was changed, each also logged."""
    changed: list[str] = []
    directory = path.parent
    if directory.name == owned_dir_name and directory.is_dir():
        changed += _tighten(directory, 0o700)
    for suffix in COMPANIONS:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            changed += _tighten(candidate, 0o600)
    return changed


def _tighten(path: Path, wanted: int) -> list[str]:
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & LOOSE:
        return []
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} is mode {mode:04o} and owned by uid {info.st_uid}, not this user: "
            f"it names credentials; make it {wanted:04o} and yours, or move it"
        )
    try:
        os.chmod(path, wanted)
    except OSError as exc:
        raise ConfigError(
            f"{path} is mode {mode:04o}; cannot make it {wanted:04o}: {exc}"
        ) from None
    note = (
        f"{path} was mode {mode:04o} (readable by others); set to {wanted:04o}. "
        "It names credentials keyturn issued: check who could read it"
    )
    log.warning(note)
    return [note]
