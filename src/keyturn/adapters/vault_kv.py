"""HashiCorp Vault (or OpenBao) KV v1/v2 as a SecretStore, through hvac.

Layout beside the consumer's entry at `{path}`: `{path}.pending` holds a key not yet
verified, `{path}.previous` the key it replaced. Consumers read `{path}` only, which changes
by `promote` alone, so they never see an unverified key (invariant 4). On KV v2 the
current entry is written with check-and-set against the version read just before, so a
concurrent writer makes the promotion fail instead of being silently overwritten.

Each entry holds the configured fields (default `access_key`, `secret_key`, as seed 000 and
Vault's AWS engine name them) plus `keyturn_token`, the rotation it belongs to.

hvac errors are translated here, once; their text is never copied into ours, because a
VaultError can carry the response body, which can hold a secret (STYLE anti-pattern 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from keyturn.domain.errors import (
    AccessDeniedError,
    BadInputError,
    EndpointUnreachableError,
    OperationFailedError,
)
from keyturn.domain.model import NewKeySecret
from keyturn.domain.rotation import StoredEntry, StoreView
from keyturn.domain.store_paths import render

TOKEN_FIELD = "keyturn_token"  # noqa: S105 - a field name
SUFFIX = {"current": "", "pending": ".pending", "previous": ".previous"}


@contextmanager
def vault_errors(action: str, path: str) -> Iterator[None]:
    """Map hvac / requests failures to keyturn errors naming the action and path only."""
    import hvac.exceptions as hv
    import requests

    where = f"Vault {action} {path}"
    try:
        yield
    except hv.Forbidden:
        raise AccessDeniedError(f"{where}: permission denied (check the token's policy)") from None
    except hv.Unauthorized:
        raise AccessDeniedError(f"{where}: not authenticated (token missing or expired)") from None
    except hv.VaultDown:
        raise EndpointUnreachableError(f"{where}: Vault is sealed or in maintenance") from None
    except hv.InvalidRequest as exc:
        detail = "check-and-set conflict: written concurrently" if _is_cas(exc) else "refused"
        raise OperationFailedError(f"{where}: {detail}") from None
    except hv.VaultError as exc:
        status = getattr(exc, "status_code", None) or "error"
        raise OperationFailedError(f"{where} failed (HTTP {status})") from None
    except requests.exceptions.ReadTimeout:
        raise EndpointUnreachableError(
            f"{where}: Vault did not answer in time (vault.timeout_seconds); check VAULT_ADDR"
        ) from None
    except requests.exceptions.SSLError:
        raise EndpointUnreachableError(f"{where}: TLS failed (check VAULT_CACERT)") from None
    except requests.exceptions.RequestException:
        raise EndpointUnreachableError(f"{where}: cannot reach Vault (check VAULT_ADDR)") from None


def _is_cas(exc: Exception) -> bool:
    errors = getattr(exc, "errors", None) or []
    return any("check-and-set" in str(item) for item in errors)


def detect_kv_version(client: Any, mount: str) -> int:
    """The mount's KV version, from the endpoint any token may read for its own mounts."""
    with vault_errors("read mount", mount):
        found = client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount.strip('/')}")
    data = found.get("data", {}) if isinstance(found, dict) else {}
    version = str((data.get("options") or {}).get("version") or "1")
    if data.get("type") not in (None, "kv", "generic"):
        raise BadInputError(f"Vault mount {mount} is {data.get('type')}, not a KV engine")
    return 2 if version == "2" else 1


class VaultKvStore:
    def __init__(
        self,
        client: Any,
        path_template: str,
        *,
        mount: str = "secret",
        kv_version: int = 2,
        account: str = "",
        key_field: str = "access_key",
        secret_field: str = "secret_key",  # noqa: S107 - a field name
    ) -> None:
        if kv_version not in (1, 2):
            raise BadInputError(f"Vault KV version must be 1 or 2, got {kv_version}")
        self._client = client
        self._template = path_template
        self._mount = mount
        self._version = kv_version
        self._account = account
        self._key_field = key_field
        self._secret_field = secret_field

    def location(self, user: str) -> str:
        return f"{self._mount}/{self._path(user, 'current')}"

    def _path(self, user: str, stage: str) -> str:
        """The rendered path, checked segment by segment (domain.store_paths): an IAM user
        named `..` must not reach another team's path."""
        base = render(self._template, account=self._account, user=user, store="vault")
        return base + SUFFIX[stage]

    # -- reads ---------------------------------------------------------------------------

    def describe(self, user: str) -> StoreView:
        def entry(stage: str) -> StoredEntry | None:
            data, _ = self._read(user, stage)
            if data is None:
                return None
            key_id = data.get(self._key_field)
            return StoredEntry(token=data.get(TOKEN_FIELD), key_id=key_id or None)

        return StoreView(
            current=entry("current"), pending=entry("pending"), previous=entry("previous")
        )

    def key_id(self, user: str, stage: str) -> str | None:
        data, _ = self._read(user, stage)
        return None if data is None else (data.get(self._key_field) or None)

    def read_pending(self, user: str, token: str) -> NewKeySecret | None:
        data, _ = self._read(user, "pending")
        if data is None or data.get(TOKEN_FIELD) != token:
            return None
        return self._secret(user, data)

    def read_current(self, user: str) -> NewKeySecret | None:
        data, _ = self._read(user, "current")
        return None if data is None else self._secret(user, data)

    # -- writes --------------------------------------------------------------------------

    def put_pending(self, user: str, secret: NewKeySecret, token: str) -> None:
        """Write `{path}.pending` (overwriting an abandoned pending entry: idempotent)."""
        self._write(user, "pending", self._entry(secret, token))

    def promote(self, user: str, token: str) -> None:
        """previous := current; current := pending (CAS on v2); delete pending.

        Each write is safe to repeat, so a crash anywhere in between resumes cleanly: the
        current entry carries the token, which tells whether the promotion happened.
        """
        current, version = self._read(user, "current")
        if current is not None and current.get(TOKEN_FIELD) == token:
            self._delete(user, "pending")
            return
        pending, _ = self._read(user, "pending")
        if pending is None or pending.get(TOKEN_FIELD) != token:
            raise OperationFailedError(
                f"{self.location(user)}: no pending entry for rotation {token} to promote"
            )
        if current is not None:
            self._write(user, "previous", current)
        self._write(user, "current", pending, cas=version)
        self._delete(user, "pending")

    def restore_previous(self, user: str, from_token: str) -> None:
        current, version = self._read(user, "current")
        if current is None or current.get(TOKEN_FIELD) != from_token:
            return  # already restored (idempotent)
        previous, _ = self._read(user, "previous")
        if previous is None:
            raise OperationFailedError(f"{self.location(user)}: no previous entry to restore")
        self._write(user, "current", previous, cas=version)
        self._write(user, "previous", current)

    def discard_pending(self, user: str, token: str) -> None:
        """Delete `{path}.pending` if it still holds rotation `token` (a stopped rotation)."""
        pending, _ = self._read(user, "pending")
        if pending is not None and pending.get(TOKEN_FIELD) == token:
            self._delete(user, "pending")

    # -- hvac calls ------------------------------------------------------------------------

    def _read(self, user: str, stage: str) -> tuple[dict[str, Any] | None, int]:
        """The entry's data and its KV v2 version (0 when absent, for CAS)."""
        import hvac.exceptions as hv

        path = self._path(user, stage)
        kv = self._client.secrets.kv
        try:
            with vault_errors("read", f"{self._mount}/{path}"):
                try:
                    if self._version == 2:
                        found = kv.v2.read_secret_version(
                            path=path, mount_point=self._mount, raise_on_deleted_version=True
                        )
                        data = found["data"]["data"]
                        version = int(found["data"]["metadata"]["version"])
                        return (dict(data) if data else None), version
                    found = kv.v1.read_secret(path=path, mount_point=self._mount)
                    return dict(found["data"]), 0
                except hv.InvalidPath:
                    # Absent (or its latest version deleted): CAS 0 means "create only", so a
                    # soft-deleted entry makes the promotion fail loudly instead of guessing.
                    return None, 0
        except (KeyError, TypeError):
            raise BadInputError(f"{self._mount}/{path}: not a KV entry keyturn can read") from None

    def _write(
        self, user: str, stage: str, data: dict[str, Any], *, cas: int | None = None
    ) -> None:
        path = self._path(user, stage)
        kv = self._client.secrets.kv
        with vault_errors("write", f"{self._mount}/{path}"):
            if self._version == 2:
                kv.v2.create_or_update_secret(
                    path=path, secret=data, cas=cas, mount_point=self._mount
                )
            else:
                kv.v1.create_or_update_secret(path=path, secret=data, mount_point=self._mount)

    def _delete(self, user: str, stage: str) -> None:
        path = self._path(user, stage)
        kv = self._client.secrets.kv
        with vault_errors("delete", f"{self._mount}/{path}"):
            if self._version == 2:
                kv.v2.delete_metadata_and_all_versions(path=path, mount_point=self._mount)
            else:
                kv.v1.delete_secret(path=path, mount_point=self._mount)

    def _entry(self, secret: NewKeySecret, token: str) -> dict[str, Any]:
        return {
            self._key_field: secret.access_key_id,
            self._secret_field: secret.secret_access_key,
            TOKEN_FIELD: token,
        }

    def _secret(self, user: str, data: dict[str, Any]) -> NewKeySecret | None:
        key_id, secret = data.get(self._key_field), data.get(self._secret_field)
        if not isinstance(key_id, str) or not isinstance(secret, str):
            raise BadInputError(
                f"{self.location(user)} has the wrong shape: expected string fields "
                f"{self._key_field} and {self._secret_field}"
            )
        return NewKeySecret(key_id, secret)
