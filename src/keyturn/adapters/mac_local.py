"""Seals made with a local 256-bit key: the CLI's zero-infrastructure authenticator.

The key lives in keyturn's state directory ($XDG_STATE_HOME/keyturn/journal.key, else
~/.local/state/keyturn/journal.key), 0600 in a 0700 directory, created on first use. It
protects the journal against everyone who can write IAM tags but cannot read the operator's
disk, which is the threat (DESIGN "who can write what"). Records sealed here are claims to
any other machine and to the Lambdas: configure `trust.mac_key` with the deployment's KMS
key to share state between them.

Written by hand on the standard library's `hmac` and `secrets`: no keyring library gives a
file-backed key with these modes and an atomic first creation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from keyturn.adapters.private_files import secure_existing, state_path
from keyturn.domain.errors import ConfigError
from keyturn.domain.trust import decode_tag, encode_tag

KEY_BYTES = 32


def default_key_path(environ: dict[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/keyturn/journal.key, else ~/.local/state/keyturn/journal.key."""
    return state_path("journal.key", environ)


class LocalAuthenticator:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._key = _load_or_create(path)

    def seal(self, message: bytes) -> str:
        return encode_tag(hmac.new(self._key, message, hashlib.sha256).digest())

    def verify(self, message: bytes, seal: str) -> bool:
        raw = decode_tag(seal)
        if raw is None:
            return False
        return hmac.compare_digest(hmac.new(self._key, message, hashlib.sha256).digest(), raw)

    def describe(self) -> str:
        return f"local key {self._path}"

    @property
    def path(self) -> Path:
        """The key file (the enrollment generation lives beside it)."""
        return self._path


def _load_or_create(path: Path) -> bytes:
    """Read the key, or create it atomically: two processes starting at once (the CLI and a
    parallel test, two terminals) must end with one key, never each with its own."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
        finally:
            os.close(fd)
        try:
            os.link(staged, path)  # fails if another process won the race: use theirs
        except FileExistsError:
            pass
        finally:
            staged.unlink(missing_ok=True)
    secure_existing(path)
    owner = path.stat().st_uid
    if owner != os.geteuid():
        # Whoever owns the key can write it, and so could make seals keyturn would trust.
        raise ConfigError(
            f"{path} is owned by uid {owner}, not this user: keyturn will not trust a journal "
            "key someone else controls; remove it or set trust.mac_key to a KMS key"
        )
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{path} is not a keyturn journal key ({len(key)} bytes, expected {KEY_BYTES}); "
            "move it aside to let keyturn create a new one (records sealed with the old key "
            "will then be reported and ignored)"
        )
    return key
