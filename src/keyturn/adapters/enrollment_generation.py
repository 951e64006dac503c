"""Where an account's enrollment generation lives: state only keyturn's sealers can write.

The generation (keyturn.domain.enrollment) is what makes `keyturn unenroll` stick: raising
it makes every earlier enrollment record stale. So it must live where a tag-writer cannot
put an old value back:

- **KMS mode**: a tag on the sealing key itself, `keyturn:enrollment-generation:ACCOUNT`.
  Who may tag a KMS key is decided by its key policy, not by IAM: the template grants
  `kms:TagResource` / `kms:UntagResource` on `JournalKey` only to `OperatorRoleArn` and
  `KeyAdminArn` (keyturn.deploy.render.journal_key), so an IAM admin with broad tagging
  rights cannot write it. One tag per account, because the key is shared by every account
  the deployment manages and an unenroll in one must not make the others' records stale.
- **local mode**: a 0600 file beside the local journal key, `enrollment-generation.ACCOUNT`,
  refused (one clear error) when another uid owns it or others may write it, like the key.

The value is `GENERATION:SEAL`, sealed with the same key: if tagging rights leak (an older
template's key policy still lets the account's IAM grant kms:TagResource), a planted value
is still not believed. What the seal cannot stop is a principal allowed to tag the key
writing back an *older genuine* value (lowering it); the enrollment service detects that
from records sealed at a later generation (docs/security.md "Known limits").
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import ConfigError
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

    from keyturn.ports import Authenticator

TAG_PREFIX = "keyturn:enrollment-generation:"
FILE_PREFIX = "enrollment-generation."


class GenerationStore(Protocol):
    """The raw sealed generation text of an account (`GENERATION:SEAL`), or None."""

    def load(self, account: str) -> str | None: ...

    def save(self, account: str, value: str) -> None: ...

    def describe(self, account: str) -> str: ...


class KmsKeyTagGenerations:
    """The generation as a tag on the sealing KMS key (key id or ARN; an alias is resolved
    once with DescribeKey, since TagResource and ListResourceTags take no alias)."""

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._kms = client
        self._key_id = key_id
        self._resolved: str | None = None if key_id.startswith("alias/") else key_id

    @requires("kms:ListResourceTags")
    def load(self, account: str) -> str | None:
        """KMS: ListResourceTags (paginated)."""
        key = self._key()
        wanted = TAG_PREFIX + account
        marker: str | None = None
        with translate("kms:ListResourceTags", self._key_id):
            while True:
                page = (
                    self._kms.list_resource_tags(KeyId=key, Marker=marker)
                    if marker
                    else self._kms.list_resource_tags(KeyId=key)
                )
                for tag in page.get("Tags", []):
                    if tag["TagKey"] == wanted:
                        return tag["TagValue"]
                marker = page.get("NextMarker")
                if not page.get("Truncated") or not marker:
                    return None

    @requires("kms:TagResource")
    def save(self, account: str, value: str) -> None:
        """KMS: TagResource (allowed by the key policy to the operators and the key admin)."""
        key = self._key()
        with translate("kms:TagResource", self._key_id):
            self._kms.tag_resource(
                KeyId=key, Tags=[{"TagKey": TAG_PREFIX + account, "TagValue": value}]
            )

    def describe(self, account: str) -> str:
        return f"tag {TAG_PREFIX}{account} on KMS key {self._key_id}"

    @requires("kms:DescribeKey")
    def _key(self) -> str:
        """KMS: DescribeKey, only for a key configured by alias."""
        if self._resolved is None:
            with translate("kms:DescribeKey", self._key_id):
                found = self._kms.describe_key(KeyId=self._key_id)
            self._resolved = found["KeyMetadata"]["Arn"]
        return self._resolved


class LocalGenerationFiles:
    """The generation as a file beside the local journal key (same directory, 0600)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _path(self, account: str) -> Path:
        if not account.isalnum():  # an account id; never a path segment of its own choosing
            raise ConfigError(f"not an account id: {account[:40]!r}")
        return self._dir / f"{FILE_PREFIX}{account}"

    def load(self, account: str) -> str | None:
        path = self._path(account)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file: keyturn will not read it")
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"{path} is owned by uid {info.st_uid}, not this user: keyturn will not "
                "trust an enrollment generation someone else controls; remove it"
            )
        if stat.S_IMODE(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                f"{path} is mode {stat.S_IMODE(info.st_mode):04o}: others may write it, so "
                "keyturn will not trust it; `chmod 600` it after checking who wrote it"
            )
        return path.read_text(encoding="ascii", errors="replace").strip()

    def save(self, account: str, value: str) -> None:
        """Atomically: a crash leaves the old value or the new one, never half of one."""
        path = self._path(account)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, value.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, path)

    def describe(self, account: str) -> str:
        return str(self._path(account))


class NoGenerations:
    """For an authenticator that offers no place of its own (a test double): generation 0
    always, and no unenroll can raise it."""

    def load(self, account: str) -> str | None:
        return None

    def save(self, account: str, value: str) -> None:
        raise ConfigError("this seal key has no place for an enrollment generation")

    def describe(self, account: str) -> str:
        return "no enrollment generation"


def generations_for(authenticator: Authenticator) -> GenerationStore:
    """The place that belongs to the key that seals: its KMS tags, or its directory."""
    from keyturn.adapters.mac_kms import KmsAuthenticator
    from keyturn.adapters.mac_local import LocalAuthenticator

    if isinstance(authenticator, KmsAuthenticator):
        return KmsKeyTagGenerations(authenticator.client, authenticator.key_id)
    if isinstance(authenticator, LocalAuthenticator):
        return LocalGenerationFiles(authenticator.path.parent)
    return NoGenerations()
