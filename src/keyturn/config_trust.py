"""Whether a config file may steer keyturn: its own module, standard library only, so the
cached `credential_process` path (cli/fast.py) applies the same rule as load_settings
without loading the settings model."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from keyturn.domain.errors import ConfigError


def check_file_trust(file: Path) -> None:
    """Refuse a config file that someone other than this user (or root) owns or may write.

    The same rule as ssh's for ~/.ssh/config: the owner must be the current user or root,
    and neither group nor others may write it. (On a platform without POSIX owners, such
    as Windows, there is nothing to check.)
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return
    try:
        found = file.stat()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    me = getuid()
    if found.st_uid not in (me, 0):
        raise ConfigError(
            f"{file}: refused: owned by uid {found.st_uid}, not by you (uid {me}) or root;"
            " anyone who owns it could steer keyturn"
        )
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = " and ".join(
            name
            for bit, name in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "others"))
            if found.st_mode & bit
        )
        raise ConfigError(
            f"{file}: refused: writable by {who} (mode {stat.S_IMODE(found.st_mode):04o});"
            f" run: chmod go-w {file}"
        )
