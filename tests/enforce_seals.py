"""Writing enforcement state tags as keyturn does (sealed), for tests that set up a history.

A test that needs "notified 10 days ago" must not write the bare marks any more: keyturn
ignores a state tag without its seal (keyturn.services.enforce_seal). These helpers seal
with the same key the code under test will verify with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from keyturn.adapters.mac_local import LocalAuthenticator
from keyturn.config import load_settings
from keyturn.domain.trust import decode_tag, encode_tag, message
from keyturn.ports import Authenticator


class MemoryKey:
    """An in-memory HMAC key: the local authenticator without its file (unit tests)."""

    def __init__(self, secret: bytes = b"k" * 32) -> None:
        self._secret = secret

    def seal(self, data: bytes) -> str:
        return encode_tag(hmac.new(self._secret, data, hashlib.sha256).digest())

    def verify(self, data: bytes, seal: str) -> bool:
        raw = decode_tag(seal)
        expected = hmac.new(self._secret, data, hashlib.sha256).digest()
        return raw is not None and hmac.compare_digest(expected, raw)

    def describe(self) -> str:
        return "test key"


def sealed(auth: Authenticator, user: str, key_id: str, marks: str) -> str:
    """`marks` as the value of `user`'s state tag for `key_id`, sealed as keyturn seals it."""
    from keyturn.domain.trust import ENFORCE_PURPOSE

    return f"{marks}:{auth.seal(message(ENFORCE_PURPOSE, user, key_id, marks))}"


def process_key(environ: dict[str, str] | None = None) -> Authenticator:
    """The key this process's keyturn (build_enforce, the handlers) seals with: the KMS key
    in KEYTURN_TRUST_MAC_KEY (on the current moto endpoint), else the local key file."""
    from keyturn.wiring import build_authenticator, build_aws

    settings = load_settings(environ={**os.environ, **(environ or {})}).settings
    return build_authenticator(settings, build_aws(settings))


def cli_key(state_home: Path) -> Authenticator:
    """The local key a `keyturn` subprocess with XDG_STATE_HOME=`state_home` seals with."""
    return LocalAuthenticator(state_home / "keyturn" / "journal.key")


def marks_of(value: str) -> str:
    """The marks of a sealed value (for reading back what keyturn wrote)."""
    return value.rpartition(":")[0]
